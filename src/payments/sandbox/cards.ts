import { DECLINE_REASONS, type DeclineReason } from '../gateway.js';

export type Brand = 'visa' | 'mastercard' | 'amex' | 'discover' | 'unknown';

/**
 * What the sandbox does with a card. Stored with the token at tokenization, because the
 * number itself is never kept.
 */
export type Behavior =
  | { kind: 'approve' }
  | { kind: 'decline'; reason: DeclineReason }
  /** Every answer about this card comes late: exercises client timeouts and retries. */
  | { kind: 'slow' }
  /** The first two capture attempts per hold answer 503: exercises capture retries. */
  | { kind: 'capture_fails_twice' }
  /**
   * Authorizations are approved, every incremental authorization is declined: a customer
   * whose card covered the first limit but not a raise of it.
   */
  | { kind: 'increment_declines'; reason: DeclineReason };

/**
 * The numbers card processors publish for testing, plus three of our own:
 * 4000000000000341 (capture fails twice) and 4000000000003055 (approves authorizations,
 * declines every increment with insufficient_funds). The decline cards decline increments
 * too, should one of their holds ever exist.
 */
export const TEST_CARDS: Readonly<Record<string, Behavior>> = {
  '4242424242424242': { kind: 'approve' },
  '5555555555554444': { kind: 'approve' },
  '4000000000000002': { kind: 'decline', reason: 'generic_decline' },
  '4000000000009995': { kind: 'decline', reason: 'insufficient_funds' },
  '4000000000000069': { kind: 'decline', reason: 'expired_card' },
  '4000000000009987': { kind: 'decline', reason: 'lost_card' },
  '4000000000009979': { kind: 'decline', reason: 'stolen_card' },
  '4000000000000119': { kind: 'decline', reason: 'processing_error' },
  '4000000000000077': { kind: 'slow' },
  '4000000000000341': { kind: 'capture_fails_twice' },
  '4000000000003055': { kind: 'increment_declines', reason: 'insufficient_funds' },
};

export function behaviorFor(number: string): Behavior {
  return TEST_CARDS[number] ?? { kind: 'approve' };
}

/** Round trip through the `behavior` text column. */
export function encodeBehavior(behavior: Behavior): string {
  return behavior.kind === 'decline' || behavior.kind === 'increment_declines'
    ? `${behavior.kind}:${behavior.reason}`
    : behavior.kind;
}

export function decodeBehavior(text: string): Behavior {
  for (const kind of ['decline', 'increment_declines'] as const) {
    if (text.startsWith(`${kind}:`)) {
      const reason = text.slice(kind.length + 1);
      const known = DECLINE_REASONS.find((r) => r === reason);
      return { kind, reason: known ?? 'generic_decline' };
    }
  }
  if (text === 'slow' || text === 'capture_fails_twice') return { kind: text };
  return { kind: 'approve' };
}

export function luhnValid(digits: string): boolean {
  if (!/^\d+$/.test(digits)) return false;
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

export function detectBrand(digits: string): Brand {
  if (/^3[47]/.test(digits)) return 'amex';
  if (/^4/.test(digits)) return 'visa';
  const two = Number(digits.slice(0, 2));
  const four = Number(digits.slice(0, 4));
  if ((two >= 51 && two <= 55) || (four >= 2221 && four <= 2720)) return 'mastercard';
  const three = Number(digits.slice(0, 3));
  const six = Number(digits.slice(0, 6));
  if (/^(6011|65)/.test(digits) || (three >= 644 && three <= 649) || (six >= 622126 && six <= 622925)) return 'discover';
  return 'unknown';
}

export type CardCheck =
  | { ok: true; number: string; brand: Brand; last4: string }
  | { ok: false; code: 'invalid_number' | 'expired_card' | 'invalid_cvc'; detail: string };

/**
 * The checks a processor makes before it hands out a token. A card is good through the
 * last instant of its expiry month (UTC).
 */
export function checkCard(
  card: { number: string; expMonth: number; expYear: number; cvc: string },
  now: number,
): CardCheck {
  // People type spaces and dashes between digit groups; nothing else is forgiven.
  const number = card.number.replace(/[\s-]/g, '');
  if (!/^\d{13,19}$/.test(number) || !luhnValid(number)) {
    return { ok: false, code: 'invalid_number', detail: 'the card number is not valid' };
  }
  if (!Number.isInteger(card.expMonth) || card.expMonth < 1 || card.expMonth > 12) {
    return { ok: false, code: 'expired_card', detail: 'the expiry month must be 1 to 12' };
  }
  if (!Number.isInteger(card.expYear) || Date.UTC(card.expYear, card.expMonth, 1) <= now) {
    return { ok: false, code: 'expired_card', detail: 'the card has expired' };
  }
  const brand = detectBrand(number);
  const cvcLength = brand === 'amex' ? 4 : 3;
  if (!new RegExp(`^\\d{${cvcLength}}$`).test(card.cvc)) {
    return { ok: false, code: 'invalid_cvc', detail: `the security code must be ${cvcLength} digits` };
  }
  return { ok: true, number, brand, last4: number.slice(-4) };
}
