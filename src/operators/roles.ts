/** What each operator role may do (issue 15). */
export const ROLES = ['admin', 'support', 'read_only'] as const;
export type Role = (typeof ROLES)[number];

/**
 * What a route needs: `read` (any operator), `rescue` (terminate, retry or void a session:
 * support and admin), `admin` (the catalogue, prices, caps, operator accounts).
 */
export type Permission = 'read' | 'rescue' | 'admin';

const GRANTS: Record<Role, readonly Permission[]> = {
  admin: ['read', 'rescue', 'admin'],
  support: ['read', 'rescue'],
  read_only: ['read'],
};

export const allows = (role: Role, permission: Permission) => GRANTS[role].includes(permission);

/** Who did something, as the audit log names them; the bootstrap token has no operator row. */
export interface Actor {
  operatorId: string | null;
  name: string;
  role: Role | 'bootstrap';
}

export const BOOTSTRAP_ACTOR: Actor = { operatorId: null, name: 'bootstrap token', role: 'bootstrap' };
