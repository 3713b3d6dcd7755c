import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { TokenResolver } from '../accounts/token-resolver.js';
import { errors } from '../errors.js';
import type { AuthenticatedOperator } from '../operators/operators.js';
import { allows, BOOTSTRAP_ACTOR, type Actor, type Permission } from '../operators/roles.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The customer a request of the customer API speaks for (set by its auth hook). */
    accountId: string;
    /** The token that request was made with (its id, never the secret). */
    tokenId: string;
    /** The operator a request of the operator API speaks for (set by its auth hook). */
    operator: Actor;
  }
  interface FastifyContextConfig {
    /** What an operator route needs (operators/roles.ts); a route that says nothing needs `admin`. */
    permission?: Permission;
    /** The one route the bootstrap token may call: creating the first admin. */
    bootstrap?: boolean;
  }
}

function bearer(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (!header) return null;
  const match = /^Bearer\s+(\S{1,512})$/i.exec(header);
  return match ? match[1]! : null;
}

/**
 * A customer's token, from wherever the request carries it (the API's bearer header, the web
 * portal's cookie), checked the one way: live (not lapsed, not revoked). False when it is not.
 */
export async function admitCustomer(tokens: TokenResolver, request: FastifyRequest, token: string | null): Promise<boolean> {
  const owner = token ? await tokens.resolve(token) : null;
  if (!owner) return false;
  request.accountId = owner.accountId;
  request.tokenId = owner.tokenId;
  return true;
}

/** The customer API's one auth hook: a customer's bearer token. */
export function customerAuth(tokens: TokenResolver) {
  return async (request: FastifyRequest): Promise<void> => {
    if (!(await admitCustomer(tokens, request, bearer(request)))) throw errors.unauthenticated();
  };
}

/**
 * The one check of what an operator may do, whichever credential found them (the API key, the
 * console's cookie): enabled, and a role that allows the route's permission.
 */
export function admitOperator(request: FastifyRequest, operator: AuthenticatedOperator | null): void {
  if (!operator) throw errors.forbidden();
  const permission = request.routeOptions.config.permission ?? 'admin';
  if (!allows(operator.role, permission)) {
    request.log.warn({ operator: operator.name, role: operator.role, route: request.routeOptions.url }, 'operator refused');
    throw errors.operatorForbidden(operator.role);
  }
  request.operator = { operatorId: operator.id, name: operator.name, role: operator.role };
}

/**
 * The operator API's one auth hook: an operator's API key as a bearer token (the web console
 * finds the operator from its cookie instead, and checks them with the same admitOperator). The
 * bootstrap token is accepted only by the route marked `bootstrap`, and that route accepts it
 * only while no enabled admin exists.
 */
export function operatorAuth(deps: { bootstrapToken: string; operatorFor: (apiKey: string) => Promise<AuthenticatedOperator | null> }) {
  // Compare digests so the comparison takes the same time whatever the length.
  const digest = (value: string) => createHash('sha256').update(value).digest();
  const bootstrap = digest(deps.bootstrapToken);
  return async (request: FastifyRequest): Promise<void> => {
    const token = bearer(request);
    if (!token) throw errors.unauthenticated();
    const config = request.routeOptions.config;
    if (timingSafeEqual(digest(token), bootstrap)) {
      if (!config.bootstrap) throw errors.bootstrapOnly();
      request.operator = BOOTSTRAP_ACTOR;
      return;
    }
    admitOperator(request, await deps.operatorFor(token));
  };
}
