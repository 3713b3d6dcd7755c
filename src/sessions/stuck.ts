import type { SessionContext, SessionStateName } from '../../machines/session/index.js';

export interface StuckPolicy {
  /** A session still authorizing after this long is stuck. */
  authorizingMs: number;
  /** A session still closing after this long, or after this many failed attempts, is stuck. */
  closingMs: number;
  closeAttempts: number;
}

const minutes = (ms: number) => (ms < 120_000 ? `${Math.round(ms / 1000)} seconds` : `${Math.round(ms / 60_000)} minutes`);

/**
 * Why an unfinished session counts as stuck, or null. Every non-final state that waits on the
 * card company has a deadline; past it, operators see the session with this reason.
 */
export function stuckReasonOf(
  state: SessionStateName,
  /** The state's full path (`closing.voiding.waiting`): what the closing is doing. */
  path: string,
  context: SessionContext,
  now: number,
  policy: StuckPolicy,
): string | null {
  const last = context.lastError ? `: ${context.lastError}` : '';
  if (state === 'authorizing') {
    const age = now - context.createdAt;
    if (age < policy.authorizingMs) return null;
    return context.declineReason
      ? `releasing an unanswered authorization for ${minutes(age)} (${context.closeAttempts} failed attempts)${last}`
      : `authorizing for ${minutes(age)}`;
  }
  if (state === 'closing') {
    const age = now - (context.closingSince ?? context.endedAt ?? now);
    if (age < policy.closingMs && context.closeAttempts < policy.closeAttempts) return null;
    // An operator's void of an owed charge voids while the charge still stands: the path says which call fails.
    const operation = path.startsWith('closing.voiding') ? 'void' : 'capture';
    return `${operation} failing for ${minutes(age)} (${context.closeAttempts} attempts)${last}`;
  }
  return null;
}
