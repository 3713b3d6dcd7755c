import type { IncomingMessage, ServerResponse } from 'node:http';
import { verifyUpstreamSignature, type SignedFacts } from '../edge/upstream-signature.js';

/**
 * What every demo service does first, as a real upstream would: it serves only requests that
 * came through tollgate for a session (the signed headers check out with the service's secret).
 */
export function signedFacts(secret: () => string, request: IncomingMessage): SignedFacts | null {
  return verifyUpstreamSignature(secret(), request.headers, { method: request.method ?? 'GET', path: request.url ?? '/' }, Date.now());
}

export function refuseUnsigned(response: ServerResponse): void {
  response.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not signed by tollgate' }));
}
