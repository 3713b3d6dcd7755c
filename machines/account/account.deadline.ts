import type { AccountSnapshot } from './account.machine.js';
import type { AccountStateName } from './account.types.js';

/** The state, as rows and views name it. */
export const accountStateOf = (snapshot: Pick<AccountSnapshot, 'value'>) => snapshot.value as AccountStateName;

/**
 * The instant at which this account next needs an event from outside, and which: the end of a
 * suspension that has one. Derived from the snapshot alone, so a restart re-arms it exactly.
 */
export function accountDeadlineOf(snapshot: AccountSnapshot): { at: number; event: 'RESUME' } | null {
  const { resumesAt } = snapshot.context;
  if (resumesAt === null) return null;
  const resume = { type: 'RESUME', at: resumesAt, by: { kind: 'system', id: null, name: 'tollgate' }, reason: 'suspension ended' } as const;
  return snapshot.can(resume) ? { at: resumesAt, event: 'RESUME' } : null;
}
