import type {} from '@fastify/csrf-protection';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { admitOperator } from '../../http/auth.js';
import { operatorForConsole } from '../../operators/console-sessions.js';
import { allows } from '../../operators/roles.js';
import { CONSOLE_COOKIE } from '../cookies.js';
import type { SafeHtml } from '../html.js';
import type { WebDeps } from '../web-deps.js';
import type { ConsoleContext } from './pages.js';

export const sendPage = (reply: FastifyReply, body: SafeHtml, status = 200) =>
  reply.code(status).type('text/html; charset=utf-8').header('cache-control', 'no-store').send(body.value);

/** What every console route file uses: who is asking, what they may do, and the page's context. */
export function consoleKit(deps: WebDeps) {
  /** Operators only: no console session sends them to log in; a role the route does not allow is a 403 page. */
  /** For a live stream: whether the console session it was opened with still logs an enabled operator in. */
  const stillOperator = (request: FastifyRequest) => async () => {
    const token = request.cookies[CONSOLE_COOKIE];
    return token !== undefined && (await operatorForConsole(deps.sql, token, deps.clock.now())) !== null;
  };
  const operatorsOnly = async (request: FastifyRequest, reply: FastifyReply) => {
    const token = request.cookies[CONSOLE_COOKIE];
    const operator = token ? await operatorForConsole(deps.sql, token, deps.clock.now()) : null;
    if (!operator) return reply.redirect(`/ops/login`, 303);
    admitOperator(request, operator);
  };
  const context = async (request: FastifyRequest, reply: FastifyReply, flash: ConsoleContext['flash'] = null): Promise<ConsoleContext> => ({
    operator: request.operator ? { name: request.operator.name, role: request.operator.role } : null,
    csrf: await reply.generateCsrf(),
    flash,
  });
  const by = (request: FastifyRequest) => ({ actor: request.operator, requestId: request.id });
  const may = (request: FastifyRequest, permission: 'rescue' | 'admin') => request.operator.role !== 'bootstrap' && allows(request.operator.role, permission);
  return { operatorsOnly, stillOperator, context, by, may };
}
