import { randomUUID } from 'node:crypto';
import { TEST_FAULTS_TOKEN } from './operators.js';

/** The card-network sandbox's reporting and fault API, as tests reach it: over HTTP. */
export interface SandboxHold {
  id: string;
  authorizationNumber: string;
  amount: string;
  capturedAmount: string;
  state: 'open' | 'captured' | 'voided' | 'expired';
  reference: string | null;
}

export interface SandboxCapture {
  id: string;
  holdId: string;
  authorizationNumber: string;
  amount: string;
}

export interface SandboxRefund {
  id: string;
  captureId: string;
  amount: string;
  reference: string | null;
}

export type FaultRule = {
  phase: 'tokenize' | 'authorize' | 'increment' | 'capture' | 'void' | 'refund';
  fault: 'decline' | 'error' | 'timeout_before_commit' | 'drop_after_commit' | 'slow';
  probability?: number;
  times?: number;
  delayMs?: number;
};

/** `faultsToken`: the bearer token the sandbox's fault API wants (CARD_NETWORK_FAULTS_TOKEN). */
export function sandbox(url: string, faultsToken = TEST_FAULTS_TOKEN) {
  const json = async (path: string, init?: RequestInit) => {
    const headers = new Headers(init?.headers);
    if (path.startsWith('/v1/faults')) headers.set('authorization', `Bearer ${faultsToken}`);
    const response = await fetch(`${url}${path}`, { ...init, headers });
    if (!response.ok) throw new Error(`${init?.method ?? 'GET'} ${path}: ${response.status} ${await response.text()}`);
    return response.json() as Promise<any>;
  };
  const post = (body: unknown): RequestInit => ({
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': randomUUID() },
    body: JSON.stringify(body),
  });
  return {
    holds: async (query = ''): Promise<SandboxHold[]> => (await json(`/v1/holds${query}`)).holds,
    captures: async (): Promise<SandboxCapture[]> => (await json('/v1/captures')).captures,
    /** Every refund, or those of one capture. */
    refunds: async (captureId?: string): Promise<SandboxRefund[]> =>
      (await json(`/v1/refunds${captureId ? `?capture=${encodeURIComponent(captureId)}` : ''}`)).refunds,
    calls: async (): Promise<Record<string, number>> => (await json('/v1/faults')).calls,
    /** The rules in force, each with how many calls it has hit (`used`). */
    rules: async (): Promise<(Omit<FaultRule, 'times'> & { times: number | null; used: number })[]> => (await json('/v1/faults')).rules,
    setFaults: (rules: FaultRule[], extra: { seed?: number; holdValidityMs?: number } = {}) =>
      json('/v1/faults', {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ rules, ...extra }),
      }),
    clearFaults: () => json('/v1/faults', { method: 'DELETE' }),
    /** Exchanges a card for a token, as tollgate's sign-up does (a fresh idempotency key each call). */
    tokenize: async (card: { number: string; expMonth: number; expYear: number; cvc: string }): Promise<string> =>
      (await json('/v1/tokens', post(card))).token,
    /** Places a hold directly at the card network, as another client (or a late request) would. */
    authorize: (hold: { token: string; amount: string; currency: string; reference?: string }): Promise<SandboxHold> =>
      json('/v1/holds', post(hold)),
  };
}
