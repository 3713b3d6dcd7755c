import rateLimit, { type CreateRateLimitOptions } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { normalizeEmail } from '../accounts/login.js';
import { errors } from '../errors.js';

/** The configured limits (README "Rate limits"). */
export interface RateLimits {
  loginPerAddress: number;
  loginPerEmail: number;
  signUpPerAddress: number;
  signUpPerEmail: number;
  opensPerAccount: number;
}

export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;
/** Keys each limiter remembers; beyond it the least recently seen is forgotten (an LRU). */
const KEYS_KEPT = 20_000;

type Check = ReturnType<FastifyInstance['createRateLimit']>;

/**
 * @fastify/rate-limit, in memory, for one node (docs/security.md says what several need). It is
 * registered with no global limit: each route names its limiters, and `limitedBy` runs them in a
 * hook and answers through the one problem helper (429 RATE_LIMITED with Retry-After). The
 * plugin's own per-route hook runs one limiter per request; a log-in needs two (the address,
 * then the e-mail).
 */
export async function registerRateLimiting(app: FastifyInstance): Promise<void> {
  await app.register(rateLimit, { global: false });
}

export function limiter(
  app: FastifyInstance,
  options: { max: number; windowMs: number; key?: (request: FastifyRequest) => string },
): Check {
  const settings: CreateRateLimitOptions & { cache: number } = {
    max: options.max,
    timeWindow: options.windowMs,
    cache: KEYS_KEPT,
    ...(options.key && { keyGenerator: options.key }),
  };
  return app.createRateLimit(settings);
}

/** A hook that counts the request against each limiter in turn and refuses it at the first one exceeded. */
export function limitedBy(...checks: Check[]) {
  return async (request: FastifyRequest): Promise<void> => {
    for (const check of checks) {
      const verdict = await check(request);
      if (!verdict.isAllowed && verdict.isExceeded) throw errors.rateLimited(Math.max(1, verdict.ttlInSeconds));
    }
  };
}

/**
 * The limiters the JSON API and the web site share: one count per address, e-mail or account,
 * whichever way a request comes (each made its own, so the site doubled every limit).
 */
export interface Limiters {
  signUpPerAddress: Check;
  signUpPerEmail: Check;
  loginPerAddress: Check;
  loginPerEmail: Check;
  opensPerAccount: Check;
  topUpsPerAccount: Check;
  passwordChangesPerAccount: Check;
}

/** By app (its HTTP server, which every plugin's instance shares), then by limits: two apps in one process count apart. */
const made = new WeakMap<object, WeakMap<RateLimits, Limiters>>();

/** The e-mail a JSON body or a form names, as log-ins and sign-ups compare them. */
const emailOf = (request: FastifyRequest) => {
  const value = (request.body as { email?: unknown } | undefined)?.email;
  return normalizeEmail(String(Array.isArray(value) ? value[0] : (value ?? '')));
};
const accountOf = (request: FastifyRequest) => request.accountId;

/** The one set of limiters of this app for these limits (the API's plugins and the web site's ask with the same object). */
export function limitersFor(app: FastifyInstance, limits: RateLimits): Limiters {
  let ofApp = made.get(app.server);
  if (!ofApp) made.set(app.server, (ofApp = new WeakMap()));
  let limiters = ofApp.get(limits);
  if (!limiters) {
    limiters = {
      signUpPerAddress: limiter(app, { max: limits.signUpPerAddress, windowMs: HOUR_MS }),
      signUpPerEmail: limiter(app, { max: limits.signUpPerEmail, windowMs: HOUR_MS, key: emailOf }),
      loginPerAddress: limiter(app, { max: limits.loginPerAddress, windowMs: MINUTE_MS }),
      loginPerEmail: limiter(app, { max: limits.loginPerEmail, windowMs: MINUTE_MS, key: emailOf }),
      opensPerAccount: limiter(app, { max: limits.opensPerAccount, windowMs: MINUTE_MS, key: accountOf }),
      topUpsPerAccount: limiter(app, { max: limits.opensPerAccount, windowMs: MINUTE_MS, key: accountOf }),
      passwordChangesPerAccount: limiter(app, { max: limits.loginPerEmail, windowMs: MINUTE_MS, key: accountOf }),
    };
    ofApp.set(limits, limiters);
  }
  return limiters;
}
