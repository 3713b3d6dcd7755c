import { timingSafeEqual, createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { TokenResolver } from '../accounts/token-resolver.js';
import { errors } from '../errors.js';

function bearer(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (!header) return null;
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  return match ? match[1]! : null;
}

export async function requireCustomer(tokens: TokenResolver, request: FastifyRequest): Promise<string> {
  const token = bearer(request);
  const accountId = token ? await tokens.accountFor(token) : null;
  if (!accountId) throw errors.unauthenticated();
  return accountId;
}

export function requireOperator(adminToken: string, request: FastifyRequest): void {
  const token = bearer(request);
  if (!token) throw errors.unauthenticated();
  // Compare digests so the comparison takes the same time whatever the length.
  const digest = (text: string) => createHash('sha256').update(text).digest();
  if (!timingSafeEqual(digest(token), digest(adminToken))) throw errors.forbidden();
}
