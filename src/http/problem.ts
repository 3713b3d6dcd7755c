import type { FastifyError, FastifyInstance } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { AppError } from '../errors.js';

const FASTIFY_CODES: Record<number, string> = {
  400: 'VALIDATION_FAILED',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  429: 'RATE_LIMITED',
};

/** Every error leaves as application/problem+json with a stable code and the request id (DESIGN rule 9). */
export function registerProblemHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    let status: number;
    let body: Record<string, unknown>;
    if (error instanceof AppError) {
      status = error.status;
      body = { code: error.code, detail: error.message, ...error.extra };
    } else if (hasZodFastifySchemaValidationErrors(error)) {
      status = 400;
      body = {
        code: 'VALIDATION_FAILED',
        detail: 'The request does not match the schema.',
        issues: error.validation.map((v) => ({
          path: `${error.validationContext ?? 'body'}${v.instancePath.replaceAll('/', '.')}`,
          message: v.message,
        })),
      };
    } else if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
      status = error.statusCode;
      body = { code: FASTIFY_CODES[status] ?? 'BAD_REQUEST', detail: error.message };
    } else {
      request.log.error({ err: error }, 'unhandled error');
      status = 500;
      body = { code: 'INTERNAL_ERROR', detail: 'Something went wrong on our side; nothing was charged twice.' };
    }
    if (status === 401) reply.header('www-authenticate', 'Bearer');
    if (typeof body.retryAfterSeconds === 'number') reply.header('retry-after', String(body.retryAfterSeconds));
    return reply
      .code(status)
      .type('application/problem+json')
      .send({ type: 'about:blank', title: titleOf(status), status, ...body, instance: request.url, requestId: request.id });
  });

  app.setNotFoundHandler((request, reply) =>
    reply.code(404).type('application/problem+json').send({
      type: 'about:blank',
      title: titleOf(404),
      status: 404,
      code: 'NOT_FOUND',
      detail: `No route for ${request.method} ${request.url}.`,
      instance: request.url,
      requestId: request.id,
    }),
  );
}

function titleOf(status: number): string {
  const titles: Record<number, string> = {
    400: 'Bad Request',
    401: 'Unauthorized',
    402: 'Payment Required',
    403: 'Forbidden',
    404: 'Not Found',
    409: 'Conflict',
    413: 'Payload Too Large',
    415: 'Unsupported Media Type',
    429: 'Too Many Requests',
    500: 'Internal Server Error',
    503: 'Service Unavailable',
  };
  return titles[status] ?? 'Error';
}
