import { randomUUID } from 'node:crypto';
import type { Sql } from '../db/sql.js';

export type Claim =
  /** This request answers the key; `resourceId` is what it makes (the same one a first attempt chose). */
  | { kind: 'claimed'; resourceId: string | null }
  | { kind: 'replay'; statusCode: number; response: unknown }
  | { kind: 'reused' }
  | { kind: 'in_use' };

interface Row {
  requestHash: Buffer;
  resourceId: string | null;
  owner: string | null;
  statusCode: number | null;
  response: unknown;
}

/**
 * The answers to Idempotency-Keys (as Stripe's API keeps them), per account. A key is claimed
 * when its first request starts and completed with its answer; a retry gets that answer. A claim
 * whose request died with its process (the owner is another, earlier process) is taken over,
 * with the resource its first attempt had chosen, so the retry finds what it made.
 */
export class IdempotencyStore {
  /** This process: a claim it holds for a request still running is in use. */
  readonly owner = randomUUID();
  private readonly running = new Set<string>();

  constructor(
    private readonly sql: Sql,
    private readonly ttlMs: number,
  ) {}

  async claim(request: { accountId: string; key: string; hash: Buffer; at: number; withResource: boolean }): Promise<Claim> {
    const { sql } = this;
    const running = `${request.accountId}|${request.key}`;
    const resourceId = request.withResource ? randomUUID() : null;
    const [created] = await sql<{ resourceId: string | null }[]>`
      insert into idempotency_keys (account_id, key, request_hash, resource_id, owner, claimed_at)
      values (${request.accountId}, ${request.key}, ${request.hash}, ${resourceId}, ${this.owner}, ${new Date(request.at)})
      on conflict (account_id, key) do nothing
      returning resource_id as "resourceId"`;
    if (created) {
      this.running.add(running);
      return { kind: 'claimed', resourceId: created.resourceId };
    }
    const [row] = await sql<Row[]>`
      select request_hash as "requestHash", resource_id as "resourceId", owner, status_code as "statusCode", response
      from idempotency_keys where account_id = ${request.accountId} and key = ${request.key}`;
    if (!row) return this.claim(request);
    if (!row.requestHash.equals(request.hash)) return { kind: 'reused' };
    if (row.statusCode !== null) return { kind: 'replay', statusCode: row.statusCode, response: row.response };
    if (this.running.has(running)) return { kind: 'in_use' };
    // Its first request is not running here: it died with an earlier process, or was cut off.
    await sql`
      update idempotency_keys set owner = ${this.owner}, claimed_at = ${new Date(request.at)}
      where account_id = ${request.accountId} and key = ${request.key}`;
    this.running.add(running);
    return { kind: 'claimed', resourceId: row.resourceId };
  }

  /**
   * Keeps the answer for retries. A 5xx is not kept: the retry is tried again, afresh, or, with
   * `keepsResource`, on the resource this attempt chose (left pending, it must not be made twice).
   */
  async complete(accountId: string, key: string, statusCode: number, response: unknown, at: number, keepsResource = false): Promise<void> {
    try {
      if (statusCode >= 500 && keepsResource) {
        await this.sql`update idempotency_keys set owner = null where account_id = ${accountId} and key = ${key} and owner = ${this.owner}`;
        return;
      }
      if (statusCode >= 500) {
        await this.sql`delete from idempotency_keys where account_id = ${accountId} and key = ${key} and owner = ${this.owner}`;
        return;
      }
      await this.sql`
        update idempotency_keys set status_code = ${statusCode}, response = ${this.sql.json(response as never)}, completed_at = ${new Date(at)}
        where account_id = ${accountId} and key = ${key}`;
    } finally {
      this.running.delete(`${accountId}|${key}`);
    }
  }

  /** The request this process claimed the key for failed: nothing is kept, and the next request with the key runs afresh. */
  async release(accountId: string, key: string): Promise<void> {
    try {
      await this.sql`delete from idempotency_keys where account_id = ${accountId} and key = ${key} and owner = ${this.owner} and status_code is null`;
    } finally {
      this.running.delete(`${accountId}|${key}`);
    }
  }

  /** The request ended without an answer (its client went away): a retry takes the claim over. */
  abandon(accountId: string, key: string): void {
    this.running.delete(`${accountId}|${key}`);
  }

  /** Forgets answers older than the time they are kept for. */
  async purge(now: number): Promise<number> {
    const rows = await this.sql`delete from idempotency_keys where claimed_at < ${new Date(now - this.ttlMs)}`;
    return rows.count;
  }
}
