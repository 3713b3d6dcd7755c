import type { CookieSerializeOptions } from '@fastify/cookie';
import type { FastifyRequest } from 'fastify';

/** The customer's session: the same bearer token the JSON API answers at log-in, kept where page scripts cannot read it. */
export const CUSTOMER_COOKIE = 'tg_session';
/** The operator's console session (operators/console-sessions.ts). */
export const CONSOLE_COOKIE = 'tg_console';

/**
 * HttpOnly (no script reads it), SameSite=Lax (another site's form posts never carry it; a link
 * from an e-mail still finds the customer logged in), Secure whenever the page came over HTTPS
 * (directly or, with TRUST_PROXY, through a proxy that says so). No Max-Age: the token's own
 * expiry (idle and absolute) decides how long the session lives.
 */
export const sessionCookie = (request: FastifyRequest): CookieSerializeOptions => ({
  path: '/',
  httpOnly: true,
  sameSite: 'lax',
  secure: request.protocol === 'https',
});
