import { createHmac, timingSafeEqual } from 'node:crypto';

/** The header every delivery carries, as Stripe's `Stripe-Signature`: `t=<unix seconds>,v1=<hex HMAC-SHA256>`. */
export const SIGNATURE_HEADER = 'tollgate-signature';

/** How far a receiver should trust a signature's timestamp from its own clock (Stripe's default): older ones may be replays. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

const hmac = (secret: string, timestamp: number, body: string) => createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');

/** Signs the exact bytes sent: the HMAC covers `${timestamp}.${body}`, so neither can be changed alone. */
export function signatureHeader(secret: string, timestamp: number, body: string): string {
  return `t=${timestamp},v1=${hmac(secret, timestamp, body)}`;
}

/**
 * What a receiver does with a delivery (and what the docs show): the signature must be one of
 * the `v1` values (several while a secret is being rolled) and its timestamp within the tolerance.
 */
export function verifySignature(request: { header: string | undefined; body: string; secret: string; nowMs: number; toleranceSeconds?: number }): boolean {
  if (!request.header) return false;
  const parts = request.header.split(',').map((part) => part.trim().split('='));
  const timestamp = Number(parts.find(([key]) => key === 't')?.[1]);
  if (!Number.isSafeInteger(timestamp)) return false;
  if (Math.abs(request.nowMs / 1000 - timestamp) > (request.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS)) return false;
  const expected = Buffer.from(hmac(request.secret, timestamp, request.body), 'hex');
  return parts.some(([key, value]) => {
    if (key !== 'v1' || !value || !/^[0-9a-f]{64}$/.test(value)) return false;
    return timingSafeEqual(Buffer.from(value, 'hex'), expected);
  });
}
