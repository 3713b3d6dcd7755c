import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Clock } from '../clock.js';
import { errors } from '../errors.js';
import type { IdempotencyStore } from './idempotency-store.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * Accepts an Idempotency-Key. `resource`: the request makes something a retry must find; a
     * 5xx answer left nothing running (a declined open), so a retry after one makes a new one.
     * `pending-resource`: what it makes may be left pending by a 5xx (a top-up whose card call
     * got no answer, driven again later), so a retry after one drives that same one.
     */
    idempotent?: 'resource' | 'pending-resource' | 'action';
  }
  interface FastifyRequest {
    idempotency: { key: string; hash: Buffer; resourceId: string | null; claimed: boolean } | null;
  }
}

const KEY = /^[\x21-\x7e]{1,255}$/;

/** JSON with its keys in one order, so the same request always hashes the same. */
export function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * Idempotency-Key on the customer routes that change things (as Stripe's API does): a retry with
 * the same key and request gets the first answer; the same key with another request is a 422.
 * Registered inside the customer plugin, after its auth hook: keys belong to an account.
 */
export function idempotencyHooks(
  app: FastifyInstance,
  deps: { store: IdempotencyStore; clock: Clock; /** Keeps one caller's keys apart from the account's own. */ keyPrefix?: (request: FastifyRequest) => string },
): void {
  app.decorateRequest('idempotency', null);

  app.addHook('preValidation', async (request) => {
    const mode = request.routeOptions.config.idempotent;
    const header = request.headers['idempotency-key'];
    if (!mode || header === undefined) return;
    if (typeof header !== 'string' || !KEY.test(header)) {
      throw errors.validation('Idempotency-Key must be 1 to 255 printable ASCII characters.');
    }
    const hash = createHash('sha256')
      .update(`${request.method} ${request.routeOptions.url} ${canonical(request.params)} ${canonical(request.body ?? null)}`)
      .digest();
    request.idempotency = { key: `${deps.keyPrefix?.(request) ?? ''}${header}`, hash, resourceId: null, claimed: false };
  });

  // After validation: a request that fails its schema never claims a key (as Stripe: nothing ran).
  app.addHook('preHandler', async (request, reply) => {
    const idempotency = request.idempotency;
    if (!idempotency) return;
    const claim = await deps.store.claim({
      accountId: request.accountId,
      key: idempotency.key,
      hash: idempotency.hash,
      at: deps.clock.now(),
      withResource: request.routeOptions.config.idempotent !== 'action',
    });
    switch (claim.kind) {
      case 'reused':
        throw errors.idempotencyKeyReused();
      case 'in_use':
        throw errors.idempotencyKeyInUse();
      case 'replay':
        return replay(reply, claim.statusCode, claim.response);
      case 'claimed':
        idempotency.claimed = true;
        idempotency.resourceId = claim.resourceId;
    }
  });

  app.addHook('onSend', async (request, reply, payload) => {
    const idempotency = request.idempotency;
    if (!idempotency?.claimed) return payload;
    idempotency.claimed = false;
    if (reply.statusCode === 499) {
      deps.store.abandon(request.accountId, idempotency.key);
      return payload;
    }
    const body = typeof payload === 'string' && payload !== '' ? (JSON.parse(payload) as unknown) : null;
    const keepsResource = request.routeOptions.config.idempotent === 'pending-resource';
    await deps.store.complete(request.accountId, idempotency.key, reply.statusCode, body, deps.clock.now(), keepsResource).catch((error: unknown) => {
      request.log.warn({ err: String(error) }, 'could not keep the answer to an Idempotency-Key');
    });
    return payload;
  });
}

function replay(reply: FastifyReply, statusCode: number, response: unknown) {
  return reply
    .code(statusCode)
    .header('idempotent-replayed', 'true')
    .type(statusCode >= 400 ? 'application/problem+json' : 'application/json')
    .send(JSON.stringify(response));
}

