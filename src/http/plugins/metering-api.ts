import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { serviceForCredential } from '../../catalogue/service-credentials.js';
import { FORWARDED_BY, type Forwarder, type Place } from '../../cluster/forwarding.js';
import { AppError, errors } from '../../errors.js';
import type { UseAnswer } from '../../sessions/metering.js';
import type { RouteDeps } from '../deps.js';
import { idempotencyHooks } from '../idempotency.js';
import { problems } from '../schemas.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The service a metering API request speaks for (set by its auth hook). */
    serviceId: string;
  }
}

const units = z.number().int().min(1).max(1_000_000);
const reservationId = z.string().regex(/^r[1-9][0-9]{0,8}$/, 'a reservation id, as the query answered it (r1, r2, …)');
const querySchema = z.object({ sessionId: z.uuid(), units });
const commitSchema = z.object({ sessionId: z.uuid(), units, reservationId: reservationId.optional() });
const releaseSchema = z.object({ sessionId: z.uuid(), reservationId });
const operation = z.discriminatedUnion('op', [
  querySchema.extend({ op: z.literal('query') }),
  commitSchema.extend({ op: z.literal('commit'), reservationId }),
  releaseSchema.extend({ op: z.literal('release') }),
]);

const useAnswerSchema = z.object({
  sessionId: z.uuid(),
  reservationId: z.string().nullable(),
  state: z.string(),
  usedUnits: z.number().int(),
  used: z.string(),
  reserved: z.string(),
  cutoffAt: z.iso.datetime().nullable(),
  applied: z.boolean(),
});
const failureSchema = z.object({ status: z.number().int(), code: z.string(), detail: z.string() });
const answers = { response: { 200: useAnswerSchema, ...problems } };
type Operation = z.infer<typeof operation>;
type Result = UseAnswer | { error: z.infer<typeof failureSchema> };

const failure = (error: AppError): Result => ({ error: { status: error.status, code: error.code, detail: error.message } });
const samePlace = (a: Place, b: Place) => (typeof a === 'string' || typeof b === 'string' ? a === b : a.nodeId === b.nodeId);

function bearer(request: FastifyRequest): string | null {
  const match = /^Bearer\s+(\S{1,512})$/i.exec(request.headers.authorization ?? '');
  return match ? match[1]! : null;
}

/**
 * The metering API (the IMS seed's query / commit / release), for services that tollgate does not
 * proxy: the service itself reports its customers' uses, with its own credential
 * (`POST /v1/services/:id/credential`). A session of another service is not found.
 */
export function meteringApi(deps: RouteDeps, forwarder: Forwarder | null = null, handlerTimeoutMs = 60_000): FastifyPluginAsyncZod {
  const { metering } = deps.commands;
  const forwardMs = Math.max(1000, Math.floor(handlerTimeoutMs / 4));

  /** Operations on sessions this node runs, one after another; a refusal does not stop the rest. */
  async function runHere(serviceId: string, operations: Operation[]): Promise<Result[]> {
    const results: Result[] = [];
    for (const op of operations) {
      try {
        if (op.op === 'query') results.push(await metering.reserve(serviceId, op.sessionId, op.units));
        else if (op.op === 'commit') results.push(await metering.commit(serviceId, op.sessionId, op.reservationId, op.units));
        else results.push(await metering.release(serviceId, op.sessionId, op.reservationId));
      } catch (error) {
        if (!(error instanceof AppError)) throw error;
        results.push(failure(error));
      }
    }
    return results;
  }

  /**
   * Operations on sessions another node runs, as a batch of their own sent to it, given at most a
   * quarter of the request's own time (the runs after it, and the answer, must fit in the rest).
   */
  async function runOn(request: FastifyRequest, owner: Exclude<Place, string>, operations: Operation[], timeoutMs: number): Promise<Result[]> {
    let answer;
    try {
      answer = await forwarder!.relay(request, owner, '/v1/metering/batch', { operations }, AbortSignal.timeout(timeoutMs));
    } catch (error) {
      if (!(error instanceof AppError)) throw error;
      return operations.map(() => failure(error));
    }
    let body: { results?: Result[]; code?: string; detail?: string } = {};
    try {
      body = JSON.parse(answer.body.toString('utf8')) as typeof body;
    } catch {
      // Not JSON: taken as a refusal below.
    }
    if (answer.statusCode === 200 && body.results?.length === operations.length) return body.results;
    // Refused whole (the credential, the body): every operation says why. Answered without a
    // readable answer: the owner may have carried them out.
    if (answer.statusCode !== 200 && body.code) {
      const refusal = { status: answer.statusCode, code: body.code, detail: body.detail ?? body.code };
      return operations.map(() => ({ error: refusal }));
    }
    return operations.map(() => failure(errors.ownerUnanswered()));
  }

  return async (app) => {
    app.addHook('onRequest', async (request) => {
      const secret = bearer(request);
      const serviceId = secret ? await serviceForCredential(deps.sql, secret) : null;
      if (!serviceId) throw errors.serviceCredentialRequired();
      request.serviceId = serviceId;
    });
    // A commit's Idempotency-Key belongs to the session's customer, apart from the keys they use themselves.
    app.addHook('preHandler', async (request) => {
      if (!request.idempotency) return;
      const sessionId = (request.body as { sessionId: string }).sessionId;
      const [row] = await deps.sql<{ account_id: string }[]>`
        select account_id from sessions where id = ${sessionId} and service_id = ${request.serviceId}`;
      if (!row) throw errors.sessionNotFound();
      request.accountId = row.account_id;
    });
    idempotencyHooks(app, { store: deps.idempotency, clock: deps.clock, keyPrefix: (request) => `metering:${request.serviceId}:` });

    // A query asked again with its Idempotency-Key (its answer was lost) gets the same reservation, not a second one.
    app.post('/v1/metering/query', { schema: { body: querySchema, ...answers }, config: { idempotent: 'action' } }, async (request) =>
      metering.reserve(request.serviceId, request.body.sessionId, request.body.units),
    );

    app.post('/v1/metering/commit', { schema: { body: commitSchema, ...answers }, config: { idempotent: 'action' } }, async (request) => {
      const { sessionId, units: used, reservationId: reserved } = request.body;
      if (reserved !== undefined) return metering.commit(request.serviceId, sessionId, reserved, used);
      if (!request.idempotency) throw errors.idempotencyKeyRequired();
      return metering.use(request.serviceId, sessionId, used);
    });

    app.post('/v1/metering/release', { schema: { body: releaseSchema, ...answers } }, async (request) =>
      metering.release(request.serviceId, request.body.sessionId, request.body.reservationId),
    );

    // Up to 100 operations in order; each answers on its own, a refusal does not stop the rest.
    app.post(
      '/v1/metering/batch',
      {
        schema: {
          // Each operation is read on its own: a malformed one is refused in its place, as any refusal
          // is. The union keeps the operations' shape in the API's description.
          body: z.object({ operations: z.array(z.union([operation, z.unknown()])).min(1).max(100) }),
          response: { 200: z.object({ results: z.array(z.union([useAnswerSchema, z.object({ error: failureSchema })])) }), ...problems },
        },
      },
      async (request) => {
        const results: Result[] = [];
        const operations: { index: number; op: Operation }[] = [];
        request.body.operations.forEach((raw, index) => {
          const parsed = operation.safeParse(raw);
          if (parsed.success) operations.push({ index, op: parsed.data });
          else results[index] = failure(errors.validation(parsed.error.issues.map((issue) => `operations.${[index, ...issue.path].join('.')}: ${issue.message}`).join('; ')));
        });
        // In a cluster each run of operations is answered by the node that runs its sessions (a
        // batch forwarded here is not sent on again: what does not run here is moving).
        const forwarded = request.headers[FORWARDED_BY] !== undefined;
        const places = forwarder ? await Promise.all(operations.map(({ op }) => forwarder.placeOf(op.sessionId, forwarded))) : operations.map((): Place => 'here');
        for (let start = 0; start < operations.length; ) {
          const place = places[start]!;
          let end = start + 1;
          while (end < operations.length && samePlace(places[end]!, place)) end++;
          const run = operations.slice(start, end);
          const ops = run.map(({ op }) => op);
          const answered =
            place === 'here' ? await runHere(request.serviceId, ops) : place === 'moving' ? ops.map(() => failure(errors.serverMoving())) : await runOn(request, place, ops, forwardMs);
          run.forEach(({ index }, i) => (results[index] = answered[i]!));
          start = end;
        }
        return { results };
      },
    );
  };
}
