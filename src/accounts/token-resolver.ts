import type { Bulkhead } from '../auth/bulkhead.js';
import type { Clock } from '../clock.js';
import type { Sql } from '../db/sql.js';
import { hashToken } from './credentials.js';
import { findLiveToken, revokeToken, TOUCH_EVERY_MS, touchToken, type TokenPolicy, type TokenRecord } from './tokens.js';

/** Who a customer's bearer token speaks for. */
export interface TokenOwner {
  accountId: string;
  tokenId: string;
}

interface Cached {
  token: TokenRecord;
  /** When this process last read the token from the database. */
  readAt: number;
  /** A use being recorded: requests meanwhile wait for it rather than write again. */
  touching?: Promise<TokenRecord | null> | undefined;
}

/**
 * Bearer token → account. Every customer request needs it, so a token read from the database
 * is trusted for `cacheTtlMs` (bounded: at most `cacheSize` entries, the oldest read first out).
 * A revocation in this process drops the entry at once; another process's revocation is seen
 * within `cacheTtlMs` (docs/security.md). A token's expiry is checked on every request against
 * the clock, and moved by a use at most once a minute. Look-ups run on a pool of their own
 * behind a bulkhead: made-up tokens, which always miss, cannot starve the main pool.
 */
export class TokenResolver {
  private readonly cache = new Map<string, Cached>();
  /** Look-ups under way: a burst of requests with one token asks the database once. */
  private readonly reading = new Map<string, Promise<TokenRecord | null>>();

  constructor(
    private readonly deps: {
      /** The pool of its own that look-ups run on. */
      sql: Sql;
      /** The main pool, for revocations (which must not wait behind a flood of look-ups). */
      writes: Sql;
      clock: Clock;
      policy: TokenPolicy;
      lookups: Bulkhead;
      cacheTtlMs: number;
      cacheSize: number;
    },
  ) {}

  /**
   * The token's owner, or null when it is unknown, revoked or expired. A use (`touch`, the default)
   * moves its idle expiry on; a check that is no use by the customer (a live page asking whether
   * its reader is still logged in) does not, or an open tab would keep the token alive.
   */
  async resolve(token: string, options: { touch?: boolean } = {}): Promise<TokenOwner | null> {
    const key = hashToken(token).toString('hex');
    const now = this.deps.clock.now();
    let entry = this.cache.get(key);
    if (!entry || now - entry.readAt >= this.deps.cacheTtlMs || now < entry.readAt) {
      this.cache.delete(key);
      let read = this.reading.get(key);
      if (!read) {
        read = this.deps.lookups.run(() => findLiveToken(this.deps.sql, token, now)).finally(() => this.reading.delete(key));
        this.reading.set(key, read);
      }
      const found = await read;
      if (!found) return null;
      entry = this.cache.get(key) ?? { token: found, readAt: now };
      this.remember(key, entry);
    }
    if (now >= entry.token.expiresAt) {
      this.cache.delete(key);
      return null;
    }
    if (options.touch !== false && now - entry.token.lastUsedAt >= TOUCH_EVERY_MS) {
      const cached = entry;
      cached.touching ??= this.deps.lookups
        .run(() => touchToken(this.deps.sql, cached.token.id, this.deps.policy, now))
        .finally(() => (cached.touching = undefined));
      const touched = await cached.touching;
      if (!touched) {
        this.cache.delete(key);
        return null;
      }
      cached.token = touched;
    }
    return { accountId: entry.token.accountId, tokenId: entry.token.id };
  }

  /** Revokes one of the account's live tokens; it stops working here at once. False when it has no such token. */
  async revoke(accountId: string, tokenId: string): Promise<boolean> {
    const tokenHash = await revokeToken(this.deps.writes, accountId, tokenId, this.deps.clock.now());
    if (!tokenHash) return false;
    this.forget(tokenHash);
    return true;
  }

  /** A token revoked here stops working here at once. */
  forget(tokenHash: Buffer): void {
    this.cache.delete(tokenHash.toString('hex'));
  }

  private remember(key: string, entry: Cached): void {
    if (this.cache.get(key) === entry) return;
    // Oldest read first out: a Map iterates in insertion order.
    while (this.cache.size >= this.deps.cacheSize) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, entry);
  }
}
