import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { AppError } from '../errors.js';
import { codeOfStatus } from '../http/problem.js';
import { html } from './html.js';
import { page } from './layout.js';

/** A page's failure as a status, a stable code and words for a person (the JSON API's problem+json, as a page). */
function problemOf(error: FastifyError): { status: number; code: string; detail: string } {
  if (error instanceof AppError) return { status: error.status, code: error.code, detail: error.message };
  if (error.code?.startsWith('FST_CSRF_')) {
    return { status: 403, code: 'CSRF_TOKEN_INVALID', detail: 'This form has expired or did not come from this site. Go back, reload the page and send it again.' };
  }
  if (hasZodFastifySchemaValidationErrors(error)) return { status: 400, code: 'VALIDATION_FAILED', detail: 'The address of this page is not valid.' };
  if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) return { status: error.statusCode, code: codeOfStatus(error.statusCode), detail: error.message };
  return { status: 500, code: 'INTERNAL_ERROR', detail: 'Something went wrong on our side; nothing was charged twice.' };
}

/** The web site's error handler: a page with the code and what to do, never a stack trace. */
export function sendErrorPage(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  const problem = problemOf(error);
  if (problem.status >= 500) request.log.error({ err: error }, 'a page failed');
  if (error instanceof AppError && typeof error.extra.retryAfterSeconds === 'number') reply.header('retry-after', String(error.extra.retryAfterSeconds));
  const nav = html`<a href="/">Catalogue</a>`;
  return reply
    .code(problem.status)
    .type('text/html; charset=utf-8')
    .send(
      page(
        { title: 'Something went wrong', nav },
        html`<p class="problem" role="alert">${problem.detail}</p><p>Error ${problem.status}, code <code>${problem.code}</code>.</p><p><a href="/">Back to the catalogue</a></p>`,
      ).value,
    );
}

