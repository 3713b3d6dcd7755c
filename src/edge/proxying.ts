import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { finished, type Readable } from 'node:stream';
import type { ClientAddress } from './client-address.js';
import { ABORT_KEY } from './abortable-requests.js';
import { cookiesForService } from './credentials.js';

/** What both ways through the edge share: the front door's (requests priced by time) and Fastify's route (the rest). */

export const noop = () => {};

/** Answers up to this size with a content-length are read whole and sent in one write. */
export const SMALL_ANSWER_BYTES = 65_536;

/** Hop-by-hop headers (RFC 9110 §7.6.1) are the upstream connection's, not the customer's. */
export const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate']);

/**
 * The customer's headers that never reach the upstream as they came: the hop's (a proxy's
 * credentials among them), the host (undici
 * names the upstream's), the access token (header or cookie, rewritten below), and Expect (Node's
 * server has already answered the customer's 100-continue; undici refuses to send it on), RFC 7239's
 * Forwarded (a client could claim any address there; X-Forwarded-* say who asked), and
 * the key Fastify's route uses to abort a forward (a customer's own is nobody's business upstream).
 */
const NOT_PASSED_ON = new Set([...HOP_BY_HOP, 'proxy-authorization', 'host', 'authorization', 'expect', 'cookie', 'forwarded', ABORT_KEY]);

/** Header names a Connection header lists: that hop's too (RFC 9110 §7.6.1). */
function listedIn(connection: string | string[] | undefined): Set<string> | null {
  if (!connection) return null;
  const value = String(connection).toLowerCase();
  // The common answers name no other header (and these two are the hop's anyway): no set per answer.
  if (value === 'keep-alive' || value === 'close') return null;
  return new Set(value.split(',').map((name) => name.trim()));
}

// Built by adding (not copied then deleted from): an object that had properties deleted is slower to
// read for what comes after (its headers are copied once more, into the answer).
export function withoutHopByHop(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const listed = listedIn(headers.connection);
  const kept: IncomingHttpHeaders = {};
  for (const name in headers) if (!HOP_BY_HOP.has(name) && !listed?.has(name)) kept[name] = headers[name];
  return kept;
}

/**
 * What a proxy adds so the upstream knows who asked and how, the customer's cookies without
 * tollgate's own, and the signed headers last (a customer cannot send their own). Written into
 * `headers`, a copy that is the edge's to change: undici leaves out a header whose value is undefined.
 */
export function addForwarding(
  headers: IncomingHttpHeaders,
  asked: IncomingHttpHeaders,
  client: ClientAddress,
  signed: Readonly<Record<string, string>>,
): IncomingHttpHeaders {
  headers.authorization = undefined;
  headers['proxy-authorization'] = undefined;
  headers.expect = undefined;
  headers.cookie = cookiesForService(asked.cookie);
  headers.forwarded = undefined;
  Object.assign(headers, forwardedHeaders(client));
  for (const name in signed) headers[name] = signed[name];
  return headers;
}

/** X-Forwarded-For (the client, then the proxies believed), -Proto and -Host: requests and WebSocket upgrades alike. */
export function forwardedHeaders(client: ClientAddress): Record<string, string> {
  return {
    'x-forwarded-for': client.forwardedFor,
    'x-forwarded-proto': client.protocol,
    'x-forwarded-host': client.host,
  };
}

/** The headers the upstream gets of a customer's request: theirs less the hop's (and any the Connection header names), with addForwarding's. */
export function upstreamHeadersOf(asked: IncomingHttpHeaders, client: ClientAddress, signed: Readonly<Record<string, string>>, withoutBody = false): IncomingHttpHeaders {
  const listed = listedIn(asked.connection);
  const headers: IncomingHttpHeaders = {};
  for (const name in asked) if (!NOT_PASSED_ON.has(name) && !listed?.has(name)) headers[name] = asked[name];
  // The body is not passed on: nor is its length.
  if (withoutBody && headers['content-length'] !== undefined) headers['content-length'] = undefined;
  return addForwarding(headers, asked, client, signed);
}

/** A small answer's body whole (a listener, not an async iterator: no promise per chunk); an error or an early end is an error. */
export function collect(stream: Readable, done: (error: Error | null, body?: Buffer) => void): void {
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  finished(stream, (error) => done(error ?? null, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
}

/**
 * A whole answer of at most `maxBytes` within `withinMs`, whatever its framing (a small answer is
 * often chunked); longer, slower, or cut short is an error.
 */
export function collectWhole(stream: Readable, maxBytes: number, withinMs: number, done: (error: Error | null, body?: Buffer) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  const timer = setTimeout(() => stream.destroy(new Error('not whole in time')), withinMs);
  stream.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > maxBytes) stream.destroy(new Error('larger than a final answer may be'));
    else chunks.push(chunk);
  });
  finished(stream, (error) => {
    clearTimeout(timer);
    done(error ?? null, Buffer.concat(chunks, size));
  });
}

/** An upstream answer not wanted: undici's body emits an AbortError when destroyed, which nobody may leave unheard (it would crash the process). */
export function discard(stream: Readable): void {
  stream.on('error', noop);
  stream.destroy();
}

/** Whether the customer's request has a body to pass on. */
export function hasBody(asked: IncomingHttpHeaders): boolean {
  return (asked['content-length'] !== undefined && asked['content-length'] !== '0') || asked['transfer-encoding'] !== undefined;
}

/**
 * An answer cut off at the session's end: its connection is reset, not closed, so what already
 * sits in the socket's send buffer (megabytes, with a reader slower than the service) is dropped
 * rather than delivered for seconds after the cut.
 */
export function breakOff(response: ServerResponse): void {
  const socket = response.socket as (ServerResponse['socket'] & { resetAndDestroy?: () => void }) | null;
  if (socket && !socket.destroyed && typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
  response.destroy();
}
