import { inCents } from '../../billing/money.js';
import type { SessionView } from '../../sessions/session-view.js';

const ENDINGS: Record<string, string> = {
  logoff: 'You logged off.',
  charge_limit: 'The session reached its charge limit and was interrupted.',
  time_limit: 'The session reached its time limit and was interrupted.',
  ops_terminated: 'An operator ended the session.',
  service_unreachable: 'The service stopped answering: the session ended, charged up to the last moment the service could be reached.',
  declined: 'The card company declined the session.',
};

/** What the live session page shows, computed on the server at its clock's now (the page only displays it). */
export interface SessionLive {
  state: string;
  /** Started and not ended: the session can be extended and logged off. */
  running: boolean;
  ended: boolean;
  endedText: string | null;
  accrued: string;
  charge: string | null;
  maxCharge: string;
  currency: string;
  /** Whole seconds until the cutoff, while running. */
  secondsLeft: number | null;
  timeLeft: string;
  cutoffAt: string | null;
  /** The warning before the cutoff (WARN_AT_SHARE, WARN_SECONDS_BEFORE), once it is due. */
  warning: string | null;
  chargeSlip: { id: string; authorizationNumber: string; amount: string } | null;
}

export function sessionLive(view: SessionView, now: number): SessionLive {
  const running = view.startedAt !== null && view.endedAt === null;
  const ended = view.endedAt !== null || view.declineReason !== null;
  const secondsLeft = running && view.cutoffAt ? Math.max(0, Math.ceil((Date.parse(view.cutoffAt) - now) / 1000)) : null;
  return {
    state: view.state,
    running,
    ended,
    endedText: ended
      ? view.declineReason === 'balance_too_low'
        ? 'Your prepaid balance did not cover the hold: nothing was held or charged.'
        : (ENDINGS[view.endReason ?? (view.declineReason ? 'declined' : '')] ?? 'The session has ended.')
      : null,
    // The API's accrued is exact; a page shows it as it would be charged.
    accrued: inCents(view.accrued),
    charge: view.charge,
    maxCharge: view.maxCharge,
    currency: view.currency,
    secondsLeft,
    timeLeft: formatSeconds(secondsLeft),
    cutoffAt: view.cutoffAt,
    warning:
      running && view.warnAt !== null && Date.parse(view.warnAt) <= now
        ? `Your session nears its limit: it will be interrupted in ${formatSeconds(secondsLeft)} unless you extend it.`
        : null,
    chargeSlip: view.chargeSlip,
  };
}

/** "1 h 02 min 05 s": time left in words a person reads at a glance. */
export function formatSeconds(seconds: number | null): string {
  if (seconds === null) return '—';
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return h > 0 ? `${h} h ${String(m).padStart(2, '0')} min ${String(s).padStart(2, '0')} s` : `${m} min ${String(s).padStart(2, '0')} s`;
}
