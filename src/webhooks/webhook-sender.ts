import type { Clock } from '../clock.js';
import type { Sql } from '../db/sql.js';
import type { Logger } from '../logger.js';
import { claimDue, recordAttempt, type DueDelivery } from './delivery-rows.js';
import { SIGNATURE_HEADER, signatureHeader } from './signature.js';
import { webhookEventId, type WebhookBody } from './webhook-events.js';

/** How deliveries are tried: exponential backoff from baseMs, capped at maxMs, given up after maxAttempts. */
export interface WebhookPolicy {
  timeoutMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  maxAttempts: number;
  pollMs: number;
}

const BATCH = 50;

/** The wait before attempt `attempt + 1`, after `attempt` failed: base × 2^(attempt−1), capped. */
export const retryDelayMs = (policy: Pick<WebhookPolicy, 'retryBaseMs' | 'retryMaxMs'>, attempt: number) =>
  Math.min(policy.retryMaxMs, policy.retryBaseMs * 2 ** Math.min(attempt - 1, 30));

/**
 * Sends due deliveries: each a signed POST of the event (Stripe's scheme: an HMAC-SHA256 over
 * `${timestamp}.${body}` in one header), logged attempt by attempt, retried with backoff until a
 * 2xx answer or the last attempt. Any answer but a 2xx is a failure; redirects are not followed.
 */
export class WebhookSender {
  private running = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;

  constructor(private readonly deps: { sql: Sql; clock: Clock; log: Logger; policy: WebhookPolicy }) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
  }

  /** Sends what is due now; answers how many were tried. */
  async sendDue(): Promise<number> {
    const { policy, clock } = this.deps;
    // The lease outlasts one attempt, so a delivery is taken again only if its attempt was never recorded.
    const due = await claimDue(this.deps.sql, clock.now(), policy.timeoutMs * 2 + 1000, BATCH);
    await Promise.all(due.map((delivery) => this.deliver(delivery)));
    return due.length;
  }

  private async deliver(delivery: DueDelivery): Promise<void> {
    const { clock, policy } = this.deps;
    const body: WebhookBody = { id: webhookEventId(delivery.position), type: delivery.type, createdAt: delivery.at.toISOString(), data: delivery.payload };
    const text = JSON.stringify(body);
    const sentAt = clock.now();
    const started = performance.now();
    let statusCode: number | null = null;
    let error: string | null = null;
    try {
      const response = await fetch(delivery.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'tollgate-webhooks/1',
          [SIGNATURE_HEADER]: signatureHeader(delivery.secret, Math.floor(sentAt / 1000), text),
        },
        body: text,
        redirect: 'manual',
        signal: AbortSignal.timeout(policy.timeoutMs),
      });
      statusCode = response.status;
      await response.body?.cancel();
      if (statusCode < 200 || statusCode > 299) error = `answered ${statusCode}`;
    } catch (thrown) {
      const cause = (thrown as { cause?: unknown }).cause;
      error = String(cause ?? thrown).slice(0, 500);
    }
    const attempt = delivery.attempts + 1;
    const delivered = error === null;
    const now = clock.now();
    await recordAttempt(this.deps.sql, {
      deliveryId: delivery.id,
      attempt,
      at: now,
      statusCode,
      error,
      durationMs: Math.round(performance.now() - started),
      delivered,
      retryAt: delivered || attempt >= policy.maxAttempts ? null : now + retryDelayMs(policy, attempt),
    });
  }

  private async run(): Promise<void> {
    while (this.running) {
      let tried = 0;
      try {
        tried = await this.sendDue();
      } catch (error) {
        this.deps.log.warn({ err: String(error) }, 'webhook deliveries failed; retrying');
      }
      if (tried < BATCH) await this.pause(this.deps.policy.pollMs);
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
      timer = setTimeout(done, ms);
      this.wake = done;
    });
  }
}
