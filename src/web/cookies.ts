import type { CookieSerializeOptions } from '@fastify/cookie';
import type { FastifyRequest } from 'fastify';

export { CONSOLE_COOKIE, CUSTOMER_COOKIE } from '../cookie-names.js';

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
