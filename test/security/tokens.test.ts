import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { signUp, signUpBody } from '../helpers/customers.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

/**
 * Customer tokens (issue 15): a sliding expiry within a maximum age, log-out and revocation that
 * take effect on the next request (a cache in front of the database included), the list of an
 * account's live tokens, and look-ups that a flood of made-up tokens cannot starve.
 */
const HOUR = 3_600_000;
const clock = new ManualClock(Date.UTC(2026, 5, 1, 12, 0, 0));
let tollgate: TestTollgate;

beforeAll(async () => {
  tollgate = await startTestTollgate({
    clock,
    // A cache long enough that a revocation which only the database knew would still pass.
    env: { TOKEN_IDLE_HOURS: '1', TOKEN_MAX_AGE_HOURS: '3', TOKEN_CACHE_TTL_MS: '300000', AUTH_POOL_SIZE: '1', AUTH_MAX_WAITING: '5' },
  });
});
afterAll(async () => {
  await tollgate?.stop();
});

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const account = (token: string) => tollgate.app.inject({ url: '/v1/account', headers: bearer(token) });
async function logIn(email: string): Promise<string> {
  const answer = await tollgate.app.inject({ method: 'POST', url: '/v1/auth/tokens', payload: { email, password: signUpBody().password } });
  expect(answer.statusCode, answer.body).toBe(201);
  return answer.json().token;
}

describe('log-out and revocation', () => {
  it('refuses a logged-out token on the next request, and only that one', async () => {
    const customer = await signUp(tollgate.app);
    const other = await logIn(customer.account.email);
    expect((await account(customer.token)).statusCode).toBe(200);
    const out = await tollgate.app.inject({ method: 'DELETE', url: '/v1/auth/tokens/current', headers: bearer(customer.token) });
    expect(out.statusCode).toBe(204);
    const next = await account(customer.token);
    expect(next.statusCode).toBe(401);
    expect(next.json().code).toBe('UNAUTHENTICATED');
    expect((await account(other)).statusCode).toBe(200);
  });

  it('lists the live tokens without their secrets, and revokes another one by id', async () => {
    const customer = await signUp(tollgate.app);
    const second = await logIn(customer.account.email);
    const listed = await tollgate.app.inject({ url: '/v1/auth/tokens', headers: bearer(second) });
    expect(listed.statusCode).toBe(200);
    const { tokens } = listed.json() as { tokens: { id: string; current: boolean; createdAt: string; lastUsedAt: string; expiresAt: string }[] };
    expect(tokens).toHaveLength(2);
    expect(tokens.filter((t) => t.current)).toHaveLength(1);
    expect(listed.body).not.toContain(customer.token);
    expect(listed.body).not.toContain(second);
    const first = tokens.find((t) => !t.current)!;
    expect(Date.parse(first.expiresAt) - Date.parse(first.lastUsedAt)).toBe(HOUR);

    expect((await tollgate.app.inject({ method: 'DELETE', url: `/v1/auth/tokens/${first.id}`, headers: bearer(second) })).statusCode).toBe(204);
    expect((await account(customer.token)).statusCode).toBe(401);
    expect((await account(second)).statusCode).toBe(200);
    // Revoked already, or another account's: not found.
    const again = await tollgate.app.inject({ method: 'DELETE', url: `/v1/auth/tokens/${first.id}`, headers: bearer(second) });
    expect(again.statusCode).toBe(404);
    expect(again.json().code).toBe('TOKEN_NOT_FOUND');
    const stranger = await signUp(tollgate.app);
    const current = tokens.find((t) => t.current)!;
    expect((await tollgate.app.inject({ method: 'DELETE', url: `/v1/auth/tokens/${current.id}`, headers: stranger.auth })).statusCode).toBe(404);
    expect((await account(second)).statusCode).toBe(200);
  });
});

describe('expiry', () => {
  it('refuses a token unused for longer than TOKEN_IDLE_HOURS; each use moves its expiry', async () => {
    const customer = await signUp(tollgate.app);
    for (let i = 0; i < 2; i++) {
      clock.advance(0.9 * HOUR);
      expect((await account(customer.token)).statusCode, `use ${i}`).toBe(200);
    }
    clock.advance(HOUR + 1000);
    const lapsed = await account(customer.token);
    expect(lapsed.statusCode).toBe(401);
    expect(lapsed.json().code).toBe('UNAUTHENTICATED');
  });

  it('refuses a token past TOKEN_MAX_AGE_HOURS however often it is used', async () => {
    const customer = await signUp(tollgate.app);
    let answers = 0;
    for (let used = 0; used < 3.5 * HOUR; used += 0.5 * HOUR) {
      clock.advance(0.5 * HOUR);
      if ((await account(customer.token)).statusCode === 200) answers++;
      else break;
    }
    // Used every half hour: good for its three hours (the sixth use is at 3 h, the limit), then refused.
    expect(answers).toBe(5);
    expect((await account(customer.token)).statusCode).toBe(401);
  });
});

describe('token look-ups under a flood', () => {
  it('answer a flood of made-up tokens 401 or 503 BUSY, and the main pool still serves everyone else', async () => {
    const customer = await signUp(tollgate.app);
    const flood = Array.from({ length: 150 }, () =>
      tollgate.app.inject({ url: '/v1/sessions', headers: bearer(`tg_${randomBytes(32).toString('base64url')}`) }),
    );
    // Meanwhile: a sign-up and a cached customer's request, both on the main pool.
    const [signed, mine] = await Promise.all([
      tollgate.app.inject({ method: 'POST', url: '/v1/accounts', payload: signUpBody() }),
      account(customer.token),
    ]);
    const answers = await Promise.all(flood);
    expect(signed.statusCode).toBe(201);
    expect(mine.statusCode).toBe(200);
    const codes = new Set(answers.map((a) => `${a.statusCode} ${a.json().code}`));
    expect([...codes].every((c) => c === '401 UNAUTHENTICATED' || c === '503 BUSY'), [...codes].join(', ')).toBe(true);
    expect(codes.has('503 BUSY')).toBe(true);
  });
});
