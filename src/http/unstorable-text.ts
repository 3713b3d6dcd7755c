import type { FastifyRequest } from 'fastify';
import { errors } from '../errors.js';

/**
 * Text PostgreSQL cannot store and JSON cannot carry: NUL (refused by text columns) and half of
 * a UTF-16 pair on its own (a lone surrogate, refused by json columns). Each reached a statement
 * and came back as a 500 (found by an outside probe: a name with `\ud800` at sign-up, a NUL in an
 * operator's search); refused here, every field of every route is answered 400 alike.
 */
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const MAX_DEPTH = 32;

/** Where in `value` the first unstorable text is (a key or a string), or null. */
export function unstorableAt(value: unknown, path: string[] = []): string[] | null {
  if (typeof value === 'string') return UNSTORABLE.test(value) ? path : null;
  if (value === null || typeof value !== 'object' || path.length > MAX_DEPTH || ArrayBuffer.isView(value)) return null;
  for (const [key, inner] of Object.entries(value)) {
    if (UNSTORABLE.test(key)) return [...path, key];
    const found = unstorableAt(inner, [...path, key]);
    if (found) return found;
  }
  return null;
}

/** A preValidation hook: 400 VALIDATION_FAILED naming the field, before any schema or statement sees it. */
export async function refuseUnstorableText(request: FastifyRequest): Promise<void> {
  for (const [part, value] of [['body', request.body], ['querystring', request.query], ['params', request.params]] as const) {
    const at = unstorableAt(value);
    if (!at) continue;
    const path = [part, ...at].join('.');
    throw errors.validation(`${path} holds a NUL or half of a UTF-16 surrogate pair, which no field accepts.`, [
      { path, message: 'must not contain NUL or a lone surrogate' },
    ]);
  }
}
