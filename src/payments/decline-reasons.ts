/**
 * Decline reasons a customer is never told: saying "stolen" to whoever holds a stolen card tells a
 * card tester which numbers to drop, and warns a thief (Stripe's advice for lost_card and
 * stolen_card: show the customer a generic decline). Operators see the exact reason.
 */
const WITHHELD = new Set(['lost_card', 'stolen_card', 'pickup_card', 'fraudulent', 'restricted_card', 'merchant_blacklist']);

export function customerDeclineReason(reason: string): string {
  return WITHHELD.has(reason) ? 'generic_decline' : reason;
}

export function customerDeclineReasonOrNull(reason: string | null): string | null {
  return reason === null ? null : customerDeclineReason(reason);
}
