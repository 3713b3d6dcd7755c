import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';
import { customer, listen, openSession, serviceWithUpstream } from './edge-client.js';
import { startUpstream, type Seen } from './upstream.js';

/**
 * What the upstream is told of who asked. A request of a session priced by time is forwarded by the
 * edge's front door, before Fastify; a path with percent-encoding goes on to Fastify's route
 * (reply-from). Both must tell the upstream the same, under the same TRUST_PROXY.
 */
let tollgate: TestTollgate;
let upstream: Awaited<ReturnType<typeof startUpstream>>;
let base: string;

beforeAll(async () => {
  upstream = await startUpstream();
  // One proxy in front (the test itself, on loopback): its X-Forwarded-* are believed. The API
  // answers the console's origin; the services answer for themselves.
  tollgate = await startTestTollgate({ env: { TRUST_PROXY: '1', CORS_ORIGINS: 'https://console.example.com' } });
  base = await listen(tollgate);
});
afterAll(async () => {
  await tollgate?.stop();
  await upstream?.close();
});

/** A GET over a real connection (fetch hides Set-Cookie): the status, the headers and the body. */
function get(url: string, headers: Record<string, string>): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers }, (response) => {
      let body = '';
      response.on('data', (chunk) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const told = (seen: Seen) => {
  const h = seen.headers;
  return {
    host: h.host,
    forwardedFor: h['x-forwarded-for'],
    forwarded: h.forwarded,
    forwardedProto: h['x-forwarded-proto'],
    forwardedHost: h['x-forwarded-host'],
    authorization: h.authorization,
    cookie: h.cookie,
    listedInConnection: h['x-hop'],
    keepAlive: h['keep-alive'],
    own: h['x-own'],
  };
};

/** A customer's session on a service whose upstream is the test's own. */
async function sessionOnUpstream() {
  const service = await serviceWithUpstream(base, tollgate.adminToken, `${upstream.url}/api`);
  upstream.setSecret(service.signingSecret);
  const ada = await customer(base);
  return { ada, session: await openSession(base, ada.token, { serviceId: service.id, maxCharge: '5.00' }) };
}

describe('what the upstream is told of who asked', () => {
  it('is the same through the front door, through Fastify and for a WebSocket: the client behind the trusted proxy and that proxy, nothing the client claimed beyond it, no token, no hop-by-hop headers, no CORS of tollgate', async () => {
    const { ada, session } = await sessionOnUpstream();
    const headers = {
      authorization: `Bearer ${session.access.token}`,
      // The web site's log-ins (Path=/) come along to every path of the origin: they stay with tollgate.
      cookie: `theme=dark; tollgate_access=${session.access.token}; tg_session=portal-login; tg_console=console-login; _csrf=secret`,
      connection: 'keep-alive, x-hop',
      'keep-alive': 'timeout=5',
      'x-hop': 'for the next hop only',
      'x-own': 'kept',
      // One hop is trusted (the test, on loopback): what the client claimed before it is not passed on.
      'x-forwarded-for': '6.6.6.6, 203.0.113.9',
      forwarded: 'for=9.9.9.9',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'tollgate.example.com',
      origin: 'https://console.example.com',
    };
    const paths = ['/json', '/js%6Fn'];
    const seen: Seen[] = [];
    for (const path of paths) {
      // The service set no CORS headers: the answer has none (CORS_ORIGINS is the API's).
      const answer = await get(`${session.access.url}${path}`, headers);
      expect({ status: answer.status, allowOrigin: answer.headers['access-control-allow-origin'] }).toEqual({ status: 200, allowOrigin: undefined });
      seen.push(upstream.seen.findLast((s) => s.path === `/api${path}`)!);
    }
    const expected = {
      host: new URL(upstream.url).host,
      forwardedFor: '203.0.113.9, 127.0.0.1',
      forwarded: undefined,
      forwardedProto: 'https',
      forwardedHost: 'tollgate.example.com',
      authorization: undefined,
      cookie: 'theme=dark',
      listedInConnection: undefined,
      keepAlive: undefined,
      own: 'kept',
    };
    expect(seen.map(told)).toEqual([expected, expected]);
    for (const s of seen) expect(s.signed).toMatchObject({ sessionId: session.id, accountId: ada.accountId });

    // A WebSocket's upstream is told the same of who asked (and nothing else of the customer's).
    const socket = new WebSocket(`${session.access.url.replace(/^http/, 'ws')}/ws`, { headers });
    await new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    socket.close();
    const upgrade = upstream.seen.findLast((s) => s.method === 'WS' && s.path === '/api/ws')!;
    expect(told(upgrade)).toMatchObject({ forwardedFor: '203.0.113.9, 127.0.0.1', forwarded: undefined, forwardedProto: 'https', forwardedHost: 'tollgate.example.com', authorization: undefined, cookie: undefined });
    expect(upgrade.signed).toMatchObject({ sessionId: session.id });
  });
});

describe('what the customer is told by the service', () => {
  it('keeps its cookies to the session\'s path, for no other domain, and never lets it set the web site\'s own', async () => {
    const { session } = await sessionOnUpstream();
    const path = new URL(session.access.url).pathname;
    // The front door (priced by time) and Fastify's route (a percent-encoded path) alike.
    const bearer = { authorization: `Bearer ${session.access.token}` };
    for (const route of ['/cookies', '/co%6Fkies']) {
      const cookies = (await get(`${session.access.url}${route}`, bearer)).headers['set-cookie'];
      expect(cookies, route).toEqual([`pref=1; Path=${path}/; HttpOnly`, `wide=1; Path=${path}/app; Secure`, `plain=1; Path=${path}`]);
    }
    // An answer whose every cookie is dropped goes out whole, with no Set-Cookie at all.
    for (const route of ['/planted', '/pl%61nted']) {
      const answer = await get(`${session.access.url}${route}`, bearer);
      expect({ status: answer.status, setCookie: answer.headers['set-cookie'], body: answer.body }, route).toEqual({ status: 200, setCookie: undefined, body: '{"planted":true}' });
    }
  });
});
