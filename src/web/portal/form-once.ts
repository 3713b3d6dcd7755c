import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Clock } from '../../clock.js';
import { canonical } from '../../http/idempotency.js';
import type { IdempotencyStore } from '../../http/idempotency-store.js';

/** How often a resend waits on its first sending, and for how long at most. */
const POLL_MS = 100;

export type FormOutcome =
  /** Done, by this sending or an earlier one of the same form: where the browser goes next. */
  | { kind: 'done'; location: string }
  /** The form was sent before with other values (edited after going back): nothing was done now. */
  | { kind: 'changed' }
  /** An earlier sending is still at work after `waitMs`. */
  | { kind: 'busy' };

/**
 * A form that makes something does it once, whichever way it is sent again (a double click, the
 * back button, a resend after a lost answer): each page carries its own form id, kept as an
 * Idempotency-Key of the account, as the JSON API keeps its keys. A resend waits for its first
 * sending and goes where that one went; a sending that failed keeps nothing, so the form can be
 * sent again once corrected. The key has spaces, which an Idempotency-Key header cannot.
 */
export async function formOnce(
  deps: { store: IdempotencyStore; clock: Clock },
  form: { accountId: string; kind: string; formId: string; values: unknown; waitMs: number },
  work: (resourceId: string) => Promise<string>,
): Promise<FormOutcome> {
  const { store, clock } = deps;
  const key = `form ${form.kind} ${form.formId}`;
  const hash = createHash('sha256').update(canonical(form.values)).digest();
  for (let waited = 0; ; waited += POLL_MS) {
    const claim = await store.claim({ accountId: form.accountId, key, hash, at: clock.now(), withResource: true });
    if (claim.kind === 'replay') return { kind: 'done', location: (claim.response as { location: string }).location };
    if (claim.kind === 'reused') return { kind: 'changed' };
    if (claim.kind === 'in_use') {
      if (waited >= form.waitMs) return { kind: 'busy' };
      await sleep(POLL_MS);
      continue;
    }
    let location: string;
    try {
      location = await work(claim.resourceId!);
    } catch (error) {
      // Not released (the database gone, say), the claim is taken over by the next sending, as after a crash.
      await store.release(form.accountId, key).catch(() => undefined);
      throw error;
    }
    // Not kept, a resend runs `work` again on the same resource, which finds what this one made.
    await store.complete(form.accountId, key, 303, { location }, clock.now()).catch(() => undefined);
    return { kind: 'done', location };
  }
}
