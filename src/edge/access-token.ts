import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Sql } from '../db/sql.js';

const PREFIX = 'tge_';
const TOKEN = /^tge_([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.([A-Za-z0-9_-]{43})$/;

/**
 * Access tokens for the edge: an HMAC-SHA256 of the session id under the deployment's key, so
 * the session's view can show its token every time it is asked (nothing secret is stored per
 * session), every node and every restart accepts it, and checking one costs a hash, not a query.
 * A token says which session it is for; whether that session may pass is the edge's table's
 * business (live-sessions.ts), so a token never outlives its session's access.
 */
export class AccessTokens {
  constructor(private readonly key: Buffer) {}

  tokenFor(sessionId: string): string {
    return `${PREFIX}${sessionId}.${this.mac(sessionId).toString('base64url')}`;
  }

  /** The session a well-formed, genuine token is for; null for anything else. */
  sessionOf(token: string): string | null {
    const match = TOKEN.exec(token);
    if (!match) return null;
    const sessionId = match[1]!;
    const given = Buffer.from(match[2]!, 'base64url');
    // Only the one spelling tokenFor gives: base64url decoding ignores the last character's two
    // spare bits, so three other strings would decode to the same MAC and pass as the token.
    if (given.toString('base64url') !== match[2]) return null;
    return given.length === 32 && timingSafeEqual(given, this.mac(sessionId)) ? sessionId : null;
  }

  private mac(sessionId: string): Buffer {
    return createHmac('sha256', this.key).update(`edge-access:${sessionId}`).digest();
  }
}

/** The deployment's key: made by the first process to start, then read by every other. */
export async function loadEdgeKey(sql: Sql, at: number): Promise<Buffer> {
  await sql`insert into edge_keys (id, key, created_at) values (1, ${randomBytes(32)}, ${new Date(at)}) on conflict (id) do nothing`;
  const [row] = await sql<{ key: Buffer }[]>`select key from edge_keys where id = 1`;
  return row!.key;
}
