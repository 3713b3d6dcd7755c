import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { ClientGoneError } from '../admission/admission.js';
import { databaseUnreachable, STATEMENT_CANCELLED } from '../db/transaction.js';
import { AppError } from '../errors.js';
import { problemBodyOf, problemDocument, problemHeaders, problemOnSocket, type ProblemBody } from '../problem-document.js';

/** The stable code of a 4xx Fastify or one of its plugins raised itself (a body too large, a bad content type). */
export const codeOfStatus = (status: number): string => FASTIFY_CODES[status] ?? 'BAD_REQUEST';

const FASTIFY_CODES: Record<number, string> = {
  400: 'VALIDATION_FAILED',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  408: 'REQUEST_TIMEOUT',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  429: 'RATE_LIMITED',
};

/**
 * The one way an error leaves tollgate (DESIGN rule 9): application/problem+json with a stable
 * code, a detail, and the request id.
 */
export function sendProblem(request: FastifyRequest, reply: FastifyReply, status: number, body: ProblemBody) {
  for (const [name, value] of Object.entries(problemHeaders(status, body))) reply.header(name, value);
  return reply.code(status).type('application/problem+json').send(problemDocument(status, body, request.url, request.id));
}

/** What an error thrown anywhere in a request becomes. */
function problemOf(error: FastifyError, request: FastifyRequest): { status: number; body: ProblemBody } {
  if (error instanceof AppError) return { status: error.status, body: problemBodyOf(error) };
  if (hasZodFastifySchemaValidationErrors(error)) {
    return {
      status: 400,
      body: {
        code: 'VALIDATION_FAILED',
        detail: 'The request does not match the schema.',
        issues: error.validation.map((v) => ({
          path: `${error.validationContext ?? 'body'}${v.instancePath.replaceAll('/', '.')}`,
          message: v.message,
        })),
      },
    };
  }
  // Nobody is left to read it; the status only shows in the access log.
  if (error instanceof ClientGoneError) return { status: 499, body: { code: 'CLIENT_GONE', detail: error.message } };
  if ((error as { code?: unknown }).code === STATEMENT_CANCELLED) {
    request.log.warn({ err: error }, 'a statement ran past statement_timeout');
    return { status: 503, body: { code: 'DATABASE_TIMEOUT', detail: 'The database took too long to answer; nothing was done. Try again shortly.', retryAfterSeconds: 5 } };
  }
  if (databaseUnreachable(error)) {
    request.log.warn({ err: error }, 'the database did not answer');
    return { status: 503, body: { code: 'DATABASE_UNAVAILABLE', detail: 'The database does not answer; nothing was done. Try again shortly.', retryAfterSeconds: 5 } };
  }
  if (error.code === 'FST_ERR_HANDLER_TIMEOUT') {
    request.log.warn({ route: request.routeOptions.url }, 'a request was not answered within HTTP_HANDLER_TIMEOUT_MS');
    return { status: 503, body: { code: 'HANDLER_TIMEOUT', detail: 'tollgate could not answer in time; ask again to see where it stands.', retryAfterSeconds: 5 } };
  }
  if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
    return { status: error.statusCode, body: { code: codeOfStatus(error.statusCode), detail: error.message } };
  }
  request.log.error({ err: error }, 'unhandled error');
  return { status: 500, body: { code: 'INTERNAL_ERROR', detail: 'Something went wrong on our side; nothing was charged twice.' } };
}

/**
 * Errors Fastify meets before a request reaches any route or hook (a path that is not valid
 * percent-encoding, a path parameter longer than maxParamLength): the same problem+json. Found by
 * the fuzz test: Fastify answered these with its own JSON shape.
 */
export function frameworkError(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    return sendProblem(request, reply, 414, { code: 'URI_TOO_LONG', detail: 'A part of the path is longer than any id tollgate uses.' });
  }
  if (error.code === 'FST_ERR_BAD_URL') {
    return sendProblem(request, reply, 400, { code: 'BAD_URL', detail: 'The path is not valid percent-encoded text.' });
  }
  request.log.error({ err: error }, 'unhandled framework error');
  return sendProblem(request, reply, 500, { code: 'INTERNAL_ERROR', detail: 'Something went wrong on our side; nothing was charged twice.' });
}

/**
 * Requests Node's HTTP parser refuses before Fastify has one (Fastify's own handler answers these
 * in a JSON shape of its own, without a code): a request line and headers past 16 KiB, a request
 * that is not HTTP/1.1 as it must be written, one not whole within HTTP_REQUEST_TIMEOUT_MS.
 */
export function clientError(error: Error & { code?: string }, socket: Duplex): void {
  // Reset by the client: nobody to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  // An answer already going on this connection (a stream, an upload still arriving when its
  // answer began): a problem written now would land inside its body. It is broken off instead.
  const going = (socket as { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (!socket.writable || going?.headersSent) {
    socket.destroy();
    return;
  }
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    problemOnSocket(socket, 408, { code: 'REQUEST_TIMEOUT', detail: 'The request did not arrive whole in time (HTTP_REQUEST_TIMEOUT_MS).' });
  } else if (error.code === 'HPE_HEADER_OVERFLOW') {
    problemOnSocket(socket, 431, { code: 'HEADERS_TOO_LARGE', detail: 'The request line and headers together must fit in 16 KiB.' });
  } else {
    problemOnSocket(socket, 400, { code: 'MALFORMED_REQUEST', detail: 'The request is not well-formed HTTP/1.1 (its request line, a header name or value, or its framing).' });
  }
  // Half-open sockets stay until the client closes them: this one is done once the answer went.
  socket.once('finish', () => socket.destroy());
}

/**
 * CONNECT asks for a tunnel, which tollgate is not (Node's server emits it apart from requests,
 * and with nobody listening dropped the connection without a word). `allowed`: the methods its
 * routes take (Fastify's), which a 405 names (RFC 9110, 15.5.6).
 */
export function refuseConnect(allowed: readonly string[]): (request: unknown, socket: Duplex) => void {
  const allow = allowed.filter((method) => method !== 'CONNECT').join(', ');
  return (_request, socket) => {
    socket.on('error', () => socket.destroy());
    problemOnSocket(socket, 405, { code: 'METHOD_NOT_ALLOWED', detail: 'tollgate is not a tunnel: CONNECT is not taken here.' }, undefined, { Allow: allow });
    // Node's server hands this socket over and forgets it (no timeouts, not closed at shutdown): once
    // the answer went, it is closed whatever the client does.
    socket.once('finish', () => socket.destroy());
  };
}

/**
 * `notFoundPage`: how the web site answers a browser's request for an address it has no page at
 * (anything outside /v1/ and /edge/ asked for as text/html); everyone else gets problem+json.
 */
export function registerProblemHandlers(app: FastifyInstance, notFoundPage?: (error: AppError, request: FastifyRequest, reply: FastifyReply) => unknown): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const { status, body } = problemOf(error, request);
    return sendProblem(request, reply, status, body);
  });
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0]!;
    const browser = !path.startsWith('/v1/') && !path.startsWith('/edge/') && (request.headers.accept ?? '').includes('text/html');
    if (notFoundPage && browser) return notFoundPage(new AppError(404, 'NOT_FOUND', 'There is no page at this address.'), request, reply);
    return sendProblem(request, reply, 404, { code: 'NOT_FOUND', detail: `No route for ${request.method} ${path}.` });
  });
}
