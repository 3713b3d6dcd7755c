import type {} from '@fastify/csrf-protection';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { admitCustomer } from '../../http/auth.js';
import { CUSTOMER_COOKIE } from '../cookies.js';
import type { SafeHtml } from '../html.js';
import type { WebDeps } from '../web-deps.js';
import type { PortalContext } from './pages.js';

export const sendPage = (reply: FastifyReply, body: SafeHtml, status = 200) =>
  reply.code(status).type('text/html; charset=utf-8').header('cache-control', 'no-store').send(body.value);

/** What every portal route file uses: the customer from the session cookie (the API's own token check), and the page's context. */
export function portalKit(deps: WebDeps) {
  const signedIn = (request: FastifyRequest) => admitCustomer(deps.tokens, request, request.cookies[CUSTOMER_COOKIE] ?? null);
  const context = async (request: FastifyRequest, reply: FastifyReply, flash: PortalContext['flash'] = null): Promise<PortalContext> => ({
    signedIn: Boolean(request.accountId) || (await signedIn(request)),
    csrf: await reply.generateCsrf(),
    flash,
  });
  /** A page for customers only: anyone else is sent to log in, and back here after. */
  const customersOnly = async (request: FastifyRequest, reply: FastifyReply) => {
    if (await signedIn(request)) return;
    const next = request.method === 'GET' ? request.url : '/account';
    return reply.redirect(`/login?next=${encodeURIComponent(next)}`, 303);
  };
  return { signedIn, context, customersOnly };
}
