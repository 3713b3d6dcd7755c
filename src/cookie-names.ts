/**
 * The names of tollgate's own cookies on its origin: the web site's, and the ones a service
 * reached through the edge may not set (src/edge/upstream-cookies.ts).
 */
/** The customer's session: the same bearer token the JSON API answers at log-in, kept where page scripts cannot read it. */
export const CUSTOMER_COOKIE = 'tg_session';
/** The operator's console session (operators/console-sessions.ts). */
export const CONSOLE_COOKIE = 'tg_console';
/** @fastify/csrf-protection's secret (its default name). */
export const CSRF_COOKIE = '_csrf';
