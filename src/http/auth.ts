import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { TokenResolver } from '../accounts/token-resolver.js';
import { errors } from '../errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The customer a request of the customer API speaks for (set by its auth hook). */
    accountId: string;
  }
}

function bearer(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (!header) return null;
  const match = /^Bearer\s+(\S{1,512})$/i.exec(header);
  return match ? match[1]! : null;
}

/** The customer API's one auth hook: a customer's bearer token. */
export function customerAuth(tokens: TokenResolver) {
  return async (request: FastifyRequest): Promise<void> => {
    const token = bearer(request);
    const accountId = token ? await tokens.accountFor(token) : null;
    if (!accountId) throw errors.unauthenticated();
    request.accountId = accountId;
  };
}

/** The operator API's one auth hook: the operator token. */
export function operatorAuth(adminToken: string) {
  // Compare digests so the comparison takes the same time whatever the length.
  const digest = (value: string) => createHash('sha256').update(value).digest();
  const expected = digest(adminToken);
  return async (request: FastifyRequest): Promise<void> => {
    const token = bearer(request);
    if (!token) throw errors.unauthenticated();
    if (!timingSafeEqual(digest(token), expected)) throw errors.forbidden();
  };
}
