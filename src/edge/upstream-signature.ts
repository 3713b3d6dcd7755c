import { createHmac, timingSafeEqual } from 'node:crypto';

/** The headers an upstream receives with every request through the edge. */
export const SIGNED_HEADERS = {
  sessionId: 'tollgate-session-id',
  accountId: 'tollgate-account-id',
  cutoffAt: 'tollgate-cutoff-at',
  signature: 'tollgate-signature',
} as const;

export interface SignedFacts {
  sessionId: string;
  accountId: string;
  /** The cutoff instant, ISO 8601. */
  cutoffAt: string;
  method: string;
  /** The path and query the upstream receives. */
  path: string;
}

/** How far an upstream should trust a signature's timestamp, as Stripe's webhooks do. */
export const SIGNATURE_TOLERANCE_MS = 300_000;

const signedText = (t: number, facts: SignedFacts) =>
  [t, facts.sessionId, facts.accountId, facts.cutoffAt, facts.method.toUpperCase(), facts.path].join('\n');

const macOf = (secret: string, text: string) => createHmac('sha256', secret).update(text).digest('hex');

/**
 * `t=<unix seconds>,v1=<hex HMAC-SHA256>` over the timestamp, the session, the account, the
 * cutoff, the method and the path (Stripe's scheme, with the request bound in): an upstream that
 * checks it knows the request came through tollgate for that session, and cannot be replayed
 * elsewhere or later.
 */
export function signUpstream(secret: string, facts: SignedFacts, nowMs: number): string {
  const t = Math.floor(nowMs / 1000);
  return `t=${t},v1=${macOf(secret, signedText(t, facts))}`;
}

/** For upstreams (the demo services use it): whether the headers were signed with `secret` lately. */
export function verifyUpstreamSignature(
  secret: string,
  headers: Record<string, string | string[] | undefined>,
  request: { method: string; path: string },
  nowMs: number,
): SignedFacts | null {
  const one = (name: string) => {
    const value = headers[name];
    return typeof value === 'string' ? value : null;
  };
  const signature = one(SIGNED_HEADERS.signature);
  const sessionId = one(SIGNED_HEADERS.sessionId);
  const accountId = one(SIGNED_HEADERS.accountId);
  const cutoffAt = one(SIGNED_HEADERS.cutoffAt);
  if (!signature || !sessionId || !accountId || !cutoffAt) return null;
  const match = /^t=(\d{1,12}),v1=([0-9a-f]{64})$/.exec(signature);
  if (!match) return null;
  const t = Number(match[1]);
  if (Math.abs(nowMs - t * 1000) > SIGNATURE_TOLERANCE_MS) return null;
  const facts = { sessionId, accountId, cutoffAt, method: request.method, path: request.path };
  const expected = Buffer.from(macOf(secret, signedText(t, facts)), 'hex');
  return timingSafeEqual(expected, Buffer.from(match[2]!, 'hex')) ? facts : null;
}
