import type { Sql } from '../db/sql.js';
import { accountIdForToken } from './accounts.js';

/**
 * Bearer token → account, remembered for the tokens seen last: every customer request needs
 * it, and a token never changes owner. Tokens cannot be revoked yet; a revocation must drop
 * the entry here too.
 */
export class TokenResolver {
  private readonly known = new Map<string, string>();

  constructor(
    private readonly sql: Sql,
    private readonly capacity = 50_000,
  ) {}

  async accountFor(token: string): Promise<string | null> {
    const cached = this.known.get(token);
    if (cached) return cached;
    const accountId = await accountIdForToken(this.sql, token);
    if (accountId) {
      // Oldest first out: a Map iterates in insertion order.
      if (this.known.size >= this.capacity) this.known.delete(this.known.keys().next().value!);
      this.known.set(token, accountId);
    }
    return accountId;
  }
}
