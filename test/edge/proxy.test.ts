import { Agent, request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';
import { call, customer, listen, openSession, readUntilEnd, serviceWithUpstream } from './edge-client.js';
import { startUpstream } from './upstream.js';

let tollgate: TestTollgate;
let upstream: Awaited<ReturnType<typeof startUpstream>>;
let base: string;
let service: { id: string; signingSecret: string };

beforeAll(async () => {
  upstream = await startUpstream();
  tollgate = await startTestTollgate();
  base = await listen(tollgate);
  service = await serviceWithUpstream(base, tollgate.adminToken, `${upstream.url}/api`);
  upstream.setSecret(service.signingSecret);
});
afterAll(async () => {
  await tollgate.stop();
  await upstream.close();
});

const through = (access: { url: string }, path: string) => `${access.url}${path}`;
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe('upstreams', () => {
  it('shows the signing secret once, when the service is made, and refuses upstreams that are not http(s) URLs', async () => {
    expect(service.signingSecret).toMatch(/^tgs_/);
    const listed = await call(base, 'GET', '/v1/services', null);
    const shown = listed.body.services.find((s: { id: string }) => s.id === service.id);
    expect(shown).toBeDefined();
    expect(shown.signingSecret).toBeUndefined();
    expect(shown.upstreamUrl).toBeUndefined();
    const patched = await call(base, 'PATCH', `/v1/services/${service.id}`, tollgate.adminToken, { maxUsers: 99 });
    expect(patched.status).toBe(200);
    expect(patched.body.upstreamUrl).toBe(`${upstream.url}/api`);
    expect(patched.body.signingSecret).toBeUndefined();
    for (const upstreamUrl of ['ftp://example.com/', 'http://user:pw@example.com/', 'http://example.com/?a=1', 'not a url']) {
      const refused = await call(base, 'PATCH', `/v1/services/${service.id}`, tollgate.adminToken, { upstreamUrl });
      expect(refused.status).toBe(400);
      expect(refused.body.code).toBe('VALIDATION_FAILED');
    }
  });
});

describe('a first upstream sent several times at once', () => {
  it('shows one signing secret, the one stored', async () => {
    const server = await call(base, 'POST', '/v1/servers', tollgate.adminToken, { name: `srv-${Date.now()}`, maxUsers: 5 });
    const created = await call(base, 'POST', '/v1/services', tollgate.adminToken, { name: `svc-${Date.now()}`, serverId: server.body.id, pricePerMinute: '1.00', maxUsers: 5 });
    const patch = (body: object) => call(base, 'PATCH', `/v1/services/${created.body.id}`, tollgate.adminToken, body);
    const answers = await Promise.all([5, 4, 3, 2, 1].map((maxUsers) => patch({ upstreamUrl: `${upstream.url}/api`, maxUsers })));
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200, 200, 200]);
    const shown = answers.map((answer) => answer.body.signingSecret).filter(Boolean);
    expect(shown).toHaveLength(1);
    const [stored] = await tollgate.sql<{ secret: string }[]>`select signing_secret as secret from services where id = ${created.body.id}`;
    expect(shown[0]).toBe(stored!.secret);
  });
});

describe('access while active', () => {
  it('gives an active session access, and proxies any method to the upstream with signed headers and no token', async () => {
    const ada = await customer(base);
    const session = await openSession(base, ada.token, { serviceId: service.id, maxCharge: '5.00' });
    expect(session.access).toEqual({ url: `${base}/edge/${session.id}`, token: expect.stringMatching(/^tge_/), expiresAt: session.cutoffAt });
    const viewed = await call(base, 'GET', `/v1/sessions/${session.id}`, ada.token);
    expect(viewed.body.access).toEqual(session.access);

    const answer = await fetch(through(session.access, '/json?x=1'), { headers: { ...bearer(session.access.token), cookie: 'theme=dark' } });
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ method: 'GET', path: '/api/json?x=1', signed: true, authorization: null, cookie: 'theme=dark' });
    const seen = upstream.seen.at(-1)!;
    expect(seen.signed).toMatchObject({ sessionId: session.id, accountId: ada.accountId, cutoffAt: session.cutoffAt });

    const body = 'x'.repeat(200_000);
    const echoed = await fetch(through(session.access, '/echo'), { method: 'PUT', headers: { ...bearer(session.access.token), 'content-type': 'text/plain' }, body });
    expect(echoed.status).toBe(200);
    expect((await echoed.text()) === body).toBe(true);
  });

  it('refuses a method Fastify does not route (404), as for a session priced per request, and passes the ones it does', async () => {
    const ada = await customer(base);
    const session = await openSession(base, ada.token, { serviceId: service.id, maxCharge: '5.00' });
    const ask = (method: string) =>
      new Promise<number>((resolve, reject) => {
        const req = httpRequest(through(session.access, '/json'), { method, headers: bearer(session.access.token) }, (response) => {
          response.resume();
          response.on('end', () => resolve(response.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end();
      });
    const before = upstream.seen.length;
    expect(await ask('PROPFIND')).toBe(404);
    expect(upstream.seen.length).toBe(before);
    expect(await ask('OPTIONS')).toBe(200);
    expect(upstream.seen.at(-1)!.method).toBe('OPTIONS');
  });

  it('refuses . and .. segments written with backslashes, which URL parsers read as slashes', async () => {
    const ada = await customer(base);
    const session = await openSession(base, ada.token, { serviceId: service.id, maxCharge: '5.00' });
    const path = new URL(session.access.url).pathname;
    // Raw, so nothing on the client's side normalizes the path first.
    const status = (target: string) =>
      new Promise<number>((resolve, reject) => {
        const socket = connect(Number(new URL(base).port), '127.0.0.1', () => {
          socket.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${session.access.token}\r\nConnection: close\r\n\r\n`);
        });
        let text = '';
        socket.on('data', (chunk) => (text += chunk.toString('latin1')));
        socket.on('end', () => resolve(Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 0)));
        socket.on('error', reject);
      });
    expect(await status(`${path}/..\\..\\outside\\json`)).toBe(400);
    expect(await status(`${path}/a\\.\\json`)).toBe(400);
    expect(await status(`${path}/a\\b..c\\json`)).toBe(200);
  });

  it('drops the headers an answer names in its Connection header, and keeps the query as the client wrote it', async () => {
    const ada = await customer(base);
    const session = await openSession(base, ada.token, { serviceId: service.id, maxCharge: '5.00' });
    for (const hop of ['/hop', '/h%6Fp']) {
      const answer = await fetch(through(session.access, hop), { headers: bearer(session.access.token) });
      expect(answer.status).toBe(200);
      expect(answer.headers.get('x-secret-hop')).toBeNull();
    }
    const answer = await fetch(`${through(session.access, '/json')}?access_token=${session.access.token}&q=a%20b~&r=c+d`, { method: 'POST' });
    expect(((await answer.json()) as { path: string }).path).toBe('/api/json?q=a%20b~&r=c+d');
    const exchanged = await fetch(`${through(session.access, '/json')}?q=a%20b~&access_token=${session.access.token}`, { redirect: 'manual' });
    expect(exchanged.status).toBe(303);
    expect(exchanged.headers.get('location')).toBe(`${new URL(session.access.url).pathname}/json?q=a%20b~`);
  });

  it('passes no body on a GET, whichever way through the edge it goes (Fastify never reads one)', async () => {
    const ada = await customer(base);
    const session = await openSession(base, ada.token, { serviceId: service.id, maxCharge: '5.00' });
    for (const echo of ['/echo', '/%65cho']) {
      const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = httpRequest(through(session.access, echo), { method: 'GET', headers: { ...bearer(session.access.token), 'content-type': 'text/plain', 'content-length': '5' } }, (response) => {
          let body = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => (body += chunk));
          response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.end('hello');
      });
      expect(answer).toEqual({ status: 200, body: '' });
    }
  });

  it('passes an upload sent with Expect: 100-continue (as curl sends large bodies): the edge says continue, the upstream gets the body', async () => {
    const ada = await customer(base);
    const session = await openSession(base, ada.token, { serviceId: service.id, maxCharge: '5.00' });
    const body = 'y'.repeat(100_000);
    const answer = await new Promise<{ status: number; text: string; continued: boolean }>((resolve, reject) => {
      let continued = false;
      const req = httpRequest(through(session.access, '/echo'), {
        method: 'POST',
        headers: { ...bearer(session.access.token), 'content-type': 'text/plain', 'content-length': String(body.length), expect: '100-continue' },
      });
      req.on('continue', () => {
        continued = true;
        req.end(body);
      });
      req.on('response', (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, text, continued }));
      });
      req.on('error', reject);
    });
    expect(answer).toMatchObject({ status: 200, continued: true });
    expect(answer.text === body).toBe(true);
  });

  it('exchanges ?access_token= for a cookie scoped to the session, which then lets requests through', async () => {
    const ada = await customer(base);
    const session = await openSession(base, ada.token, { serviceId: service.id, maxCharge: '5.00' });
    const exchanged = await fetch(`${through(session.access, '/json')}?access_token=${session.access.token}&y=2`, { redirect: 'manual' });
    expect(exchanged.status).toBe(303);
    expect(exchanged.headers.get('location')).toBe(`/edge/${session.id}/json?y=2`);
    const cookie = exchanged.headers.get('set-cookie')!;
    expect(cookie).toContain(`Path=/edge/${session.id}`);
    expect(cookie).toContain('HttpOnly');
    const withCookie = await fetch(`${base}${exchanged.headers.get('location')}`, { headers: { cookie: cookie.split(';')[0]! } });
    expect(withCookie.status).toBe(200);
    expect(await withCookie.json()).toMatchObject({ path: '/api/json?y=2', cookie: null });
  });

  it('answers 401 without a token or with a malformed one, and 403 to another session’s token', async () => {
    const ada = await customer(base);
    const grace = await customer(base);
    const other = await serviceWithUpstream(base, tollgate.adminToken, upstream.url);
    const mine = await openSession(base, ada.token, { serviceId: service.id, maxCharge: '5.00' });
    const mineElsewhere = await openSession(base, ada.token, { serviceId: other.id, maxCharge: '5.00' });
    const hers = await openSession(base, grace.token, { serviceId: service.id, maxCharge: '5.00' });
    const at = (token: string | null) => fetch(through(mine.access, '/json'), { headers: token === null ? {} : bearer(token) });

    // The same MAC spelt otherwise: the last character's two spare bits set differently.
    const last = mine.access.token.at(-1)!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const respelt = `${mine.access.token.slice(0, -1)}${alphabet[alphabet.indexOf(last) ^ 1]}`;
    // A token one character off, whatever the token: its second-to-last character carries six bits of the MAC.
    const second = mine.access.token.at(-2)!;
    const wrong = `${mine.access.token.slice(0, -2)}${alphabet[(alphabet.indexOf(second) + 1) % 64]}${last}`;
    for (const token of [null, 'nonsense', wrong, respelt]) {
      const refused = await at(token);
      expect(refused.status).toBe(401);
      expect(refused.headers.get('content-type')).toContain('application/problem+json');
      expect(((await refused.json()) as { code: string }).code).toBe('ACCESS_TOKEN_INVALID');
    }
    const herToken = await at(hers.access.token);
    expect(herToken.status).toBe(403);
    expect(await herToken.json()).toMatchObject({ code: 'ACCESS_FORBIDDEN', reason: 'other_customer' });
    const otherService = await at(mineElsewhere.access.token);
    expect(otherService.status).toBe(403);
    expect(await otherService.json()).toMatchObject({ code: 'ACCESS_FORBIDDEN', reason: 'other_service' });
  });
});

describe('the cut', () => {
  it('cuts a server-sent-events stream within a second of the cutoff, then answers 402 SESSION_ENDED', async () => {
    const ada = await customer(base);
    const session = await openSession(base, ada.token, { serviceId: service.id, maxMinutes: 3 / 60 });
    const read = await readUntilEnd(through(session.access, '/events'), session.access.token);
    expect(read.status).toBe(200);
    expect(read.text).toContain('data: tick 1');
    const late = read.endedAt - Date.parse(session.cutoffAt);
    expect(late).toBeGreaterThanOrEqual(-20);
    expect(late).toBeLessThan(1000);

    const after = await fetch(through(session.access, '/json'), { headers: bearer(session.access.token) });
    expect(after.status).toBe(402);
    expect(await after.json()).toMatchObject({ code: 'SESSION_ENDED', endReason: 'time_limit' });
    const viewed = await call(base, 'GET', `/v1/sessions/${session.id}`, ada.token);
    expect(viewed.body.access).toBeNull();
  });

  it('keeps a stream flowing past the old cutoff when the session is extended', async () => {
    const ada = await customer(base);
    // 0.60 a minute is 0.01 a second: 0.03 lasts three seconds.
    const session = await openSession(base, ada.token, { serviceId: service.id, maxCharge: '0.03' });
    const reading = readUntilEnd(through(session.access, '/events'), session.access.token);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const extended = await call(base, 'POST', `/v1/sessions/${session.id}/extend`, ada.token, { maxCharge: '0.06' });
    expect(extended.status).toBe(200);
    expect(Date.parse(extended.body.access.expiresAt)).toBeGreaterThan(Date.parse(session.cutoffAt) + 2500);
    const read = await reading;
    expect(read.endedAt - Date.parse(session.cutoffAt)).toBeGreaterThan(2000);
    expect(read.endedAt - Date.parse(extended.body.cutoffAt)).toBeLessThan(1000);
  });

  it('closes a WebSocket with 4402 and the reason at logoff', async () => {
    const ada = await customer(base);
    const session = await openSession(base, ada.token, { serviceId: service.id, maxCharge: '5.00' });
    const socket = new WebSocket(`${through(session.access, '/chat').replace('http', 'ws')}?access_token=${session.access.token}`);
    await new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    const echoed = new Promise((resolve) => socket.once('message', (data) => resolve(data.toString())));
    socket.send('hello');
    expect(await echoed).toBe('hello');
    expect(upstream.seen.at(-1)).toMatchObject({ method: 'WS', path: '/api/chat' });
    expect(upstream.seen.at(-1)!.signed).not.toBeNull();
    const closed = new Promise<{ code: number; reason: string; at: number }>((resolve) =>
      socket.once('close', (code, reason) => resolve({ code, reason: reason.toString(), at: Date.now() })),
    );
    const loggedOffAt = Date.now();
    const loggedOff = await call(base, 'POST', `/v1/sessions/${session.id}/logoff`, ada.token);
    expect(loggedOff.status).toBe(200);
    const close = await closed;
    expect(close).toMatchObject({ code: 4402, reason: 'session ended: logoff' });
    expect(close.at - loggedOffAt).toBeLessThan(1000);
    const again = new WebSocket(`${through(session.access, '/chat').replace('http', 'ws')}`, { headers: bearer(session.access.token) });
    const refused = await new Promise<number>((resolve) => again.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)));
    expect(refused).toBe(402);
  });
});

describe('when the service is gone', () => {
  it('closes a WebSocket with 1014 when the service drops it without a close, and the session goes on', async () => {
    const ada = await customer(base);
    const session = await openSession(base, ada.token, { serviceId: service.id, maxCharge: '5.00' });
    const socket = new WebSocket(`${through(session.access, '/chat').replace('http', 'ws')}`, { headers: bearer(session.access.token) });
    await new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    const closed = new Promise<{ code: number; reason: string }>((resolve) => socket.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    socket.send('drop');
    expect(await closed).toEqual({ code: 1014, reason: 'the service went away' });
    expect((await call(base, 'GET', `/v1/sessions/${session.id}`, ada.token)).body.state).toBe('active');
    await call(base, 'POST', `/v1/sessions/${session.id}/logoff`, ada.token);
  });

  it('answers 502 to an upload still on its way when the service refuses connections, and goes on serving', async () => {
    const own = await startUpstream();
    const gone = await serviceWithUpstream(base, tollgate.adminToken, `${own.url}/api`);
    const ada = await customer(base);
    const session = await openSession(base, ada.token, { serviceId: gone.id, maxCharge: '5.00' });
    await own.close();
    let req: ReturnType<typeof httpRequest> | null = null;
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      req = httpRequest(through(session.access, '/echo'), { method: 'POST', headers: { ...bearer(session.access.token), 'content-type': 'application/octet-stream', 'content-length': String(1_000_000) } });
      req.write(Buffer.alloc(10_000, 1));
      req.on('response', (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      });
      req.on('error', reject);
    });
    // The client gives up on the rest of its upload.
    req!.destroy();
    expect(answer.status).toBe(502);
    expect(JSON.parse(answer.body)).toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' });
    // Still here (an unheard error of the upload's would have ended the process).
    expect((await call(base, 'GET', '/v1/services', null)).status).toBe(200);
  });
});

/** A WebSocket upgrade written by hand (no client library checks or rewrites it first): its answer's status and body. */
function rawUpgrade(path: string, token: string, extraHeaders = ''): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(Number(new URL(base).port), '127.0.0.1', () => {
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n` +
          `Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${extraHeaders}\r\n`,
        // One byte a character, as header values are read.
        'latin1',
      );
    });
    let text = '';
    socket.on('data', (chunk) => (text += chunk.toString('latin1')));
    socket.on('close', () => {
      const line = /^HTTP\/1\.1 (\d+)/.exec(text);
      if (line) resolve({ status: Number(line[1]), text });
      else reject(new Error(`no answer: ${JSON.stringify(text)}`));
    });
    socket.on('error', reject);
  });
}

describe('paths', () => {
  it('refuses a WebSocket whose path does not decode (hiding a .. segment), as Fastify refuses such a request', async () => {
    const ada = await customer(base);
    const session = await openSession(base, ada.token, { serviceId: service.id, maxCharge: '5.00' });
    const { status } = await rawUpgrade(`${new URL(session.access.url).pathname}/%2e%2e/admin/%ff`, session.access.token);
    expect(status).toBe(400);
    expect(upstream.seen.some((s) => s.method === 'WS' && s.path.includes('admin'))).toBe(false);
  });
});

describe('WebSocket handshakes', () => {
  it('refuses subprotocols that are not a list of distinct names with 400 BAD_UPGRADE, and goes on serving', async () => {
    const ada = await customer(base);
    const session = await openSession(base, ada.token, { serviceId: service.id, maxCharge: '5.00' });
    const path = `${new URL(session.access.url).pathname}/ws`;
    // A repeated name, empty elements, an empty header: each once ended the whole process. A
    // no-break space after a name: ws's server refuses it, so the edge must not dial for it.
    for (const protocols of ['chat, chat', 'a b,,', '', 'chat\u00a0']) {
      const answer = await rawUpgrade(path, session.access.token, `Sec-WebSocket-Protocol: ${protocols}\r\n`);
      expect(answer.status, protocols).toBe(400);
      expect(answer.text).toContain('"code":"BAD_UPGRADE"');
    }
    // Still serving, and a good list still reaches the service.
    const socket = new WebSocket(through(session.access, '/ws').replace(/^http/, 'ws'), ['chat', 'superchat'], { headers: bearer(session.access.token) });
    await new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    socket.close();
    const seen = upstream.seen.filter((s) => s.method === 'WS' && s.path.endsWith('/ws')).at(-1);
    expect(seen?.headers['sec-websocket-protocol']).toBe('chat,superchat');
  });
});

describe('a malformed request behind an answer already going', () => {
  it('breaks the connection off rather than writing a problem into the answer', async () => {
    const ada = await customer(base);
    const session = await openSession(base, ada.token, { serviceId: service.id, maxCharge: '5.00' });
    const text = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(new URL(base).port), '127.0.0.1', () => {
        socket.write(`GET ${new URL(session.access.url).pathname}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${session.access.token}\r\n\r\n`);
      });
      let received = '';
      socket.on('data', (chunk) => {
        const first = received === '';
        received += chunk.toString('latin1');
        // The stream's headers went: a second request on the connection that is not HTTP.
        if (first) socket.write('NOT HTTP AT ALL\r\n\r\n');
      });
      socket.on('close', () => resolve(received));
      socket.on('error', reject);
    });
    expect(text).toMatch(/^HTTP\/1\.1 200/);
    expect(text).not.toContain('MALFORMED_REQUEST');
    expect(text.match(/HTTP\/1\.1 /g)).toHaveLength(1);
  });
});

describe('the cut, under more', () => {
  it('answers 402 to a request still waiting for its upstream when an operator terminates the session', async () => {
    const ada = await customer(base);
    const session = await openSession(base, ada.token, { serviceId: service.id, maxCharge: '5.00' });
    const waiting = fetch(through(session.access, '/slow'), { headers: bearer(session.access.token) });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const terminated = await call(base, 'POST', `/v1/ops/sessions/${session.id}/terminate`, tollgate.adminToken);
    expect(terminated.status).toBe(200);
    const answer = await waiting;
    expect(answer.status).toBe(402);
    expect(await answer.json()).toMatchObject({ code: 'SESSION_ENDED', endReason: 'ops_terminated' });
  });

  // /sl%6Fw (percent-encoded) takes Fastify's route; /slow the front door.
  it.each(['/slow', '/sl%6Fw'])('answers 402 to a client still uploading to %s when the session ends, on a connection that stays usable, and stops passing the upload on', async (slow) => {
    const ada = await customer(base);
    const session = await openSession(base, ada.token, { serviceId: service.id, maxCharge: '5.00' });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const sent = { chunks: 0, error: null as Error | null, sockets: [] as unknown[] };
    const answer = await new Promise<{ status: number; body: string; sentBefore: number; sentAfter: () => number }>((resolve, reject) => {
      // /slow answers a second after the request came, whatever its body: the cut comes first.
      const req = httpRequest(through(session.access, slow), { method: 'POST', agent, headers: { ...bearer(session.access.token), 'content-type': 'application/octet-stream' } });
      const ticking = setInterval(() => {
        if (sent.chunks === 20) {
          clearInterval(ticking);
          req.end();
          return;
        }
        sent.chunks++;
        req.write(Buffer.alloc(16_384, 1));
      }, 50);
      req.on('response', (response) => {
        const sentBefore = sent.chunks;
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body, sentBefore, sentAfter: () => sent.chunks }));
      });
      req.on('socket', (socket) => sent.sockets.push(socket));
      req.on('error', (error) => {
        clearInterval(ticking);
        sent.error = error;
        reject(error);
      });
      setTimeout(() => void call(base, 'POST', `/v1/ops/sessions/${session.id}/terminate`, tollgate.adminToken), 300);
    });
    expect(answer.status).toBe(402);
    expect(JSON.parse(answer.body)).toMatchObject({ code: 'SESSION_ENDED', endReason: 'ops_terminated' });
    // The answer came while the client was still sending.
    expect(answer.sentBefore).toBeLessThan(20);
    await expect.poll(() => answer.sentAfter(), { timeout: 5_000 }).toBe(20);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(sent.error).toBeNull();
    // The same connection takes the next request (the rest of the upload was read and dropped).
    const next = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(through(session.access, '/json'), { agent, headers: bearer(session.access.token) }, (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
      });
      req.on('socket', (socket) => sent.sockets.push(socket));
      req.on('error', reject);
      req.end();
    });
    expect(next).toBe(402);
    expect(sent.sockets).toHaveLength(2);
    expect(sent.sockets[1]).toBe(sent.sockets[0]);
    agent.destroy();
    // What went on to the service stopped at the cut: the session counts fewer bytes in than were sent.
    const bytesIn = async () => (await call(base, 'GET', `/v1/sessions/${session.id}`, ada.token)).body.traffic.bytesIn as number;
    await expect.poll(bytesIn).toBeGreaterThan(0);
    expect(await bytesIn()).toBeLessThan(20 * 16_384);
  });

  it('resets a stream it cuts, so a reader slower than the service does not go on getting it after the cut', async () => {
    const ada = await customer(base);
    const session = await openSession(base, ada.token, { serviceId: service.id, maxCharge: '5.00' });
    const received = await new Promise<{ afterCut: number }>((resolve, reject) => {
      const req = httpRequest(through(session.access, '/big'), { headers: bearer(session.access.token) }, (response) => {
        let afterCut: number | null = null;
        response.once('data', () => {
          // The reader stops reading; the service goes on sending into the socket's buffers.
          response.pause();
          setTimeout(async () => {
            await call(base, 'POST', `/v1/sessions/${session.id}/logoff`, ada.token);
            await new Promise((r) => setTimeout(r, 300));
            afterCut = 0;
            response.on('data', (chunk: Buffer) => (afterCut! += chunk.length));
            response.resume();
          }, 500);
        });
        const done = () => resolve({ afterCut: afterCut ?? -1 });
        response.on('end', done);
        response.on('error', done);
        response.on('close', done);
      });
      req.on('error', reject);
      req.end();
    });
    // What had reached the client's own socket buffer before the cut cannot be taken back (under
    // 1 MiB here); what still sat in tollgate's send buffer is dropped (a closed socket delivered
    // over 4 MiB more of it, here, after the cut).
    expect(received.afterCut).toBeGreaterThanOrEqual(0);
    expect(received.afterCut).toBeLessThan(2 * 1024 * 1024);
  });

  it('holds 150 streams of one session open at once (more than the 128 connections an upstream pool often allows) and cuts them all at logoff', async () => {
    const ada = await customer(base);
    const session = await openSession(base, ada.token, { serviceId: service.id, maxCharge: '5.00' });
    const openBefore = upstream.streams.open;
    const reads = Array.from({ length: 150 }, () => readUntilEnd(through(session.access, '/events'), session.access.token));
    for (let i = 0; i < 200 && upstream.streams.open - openBefore < 150; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(upstream.streams.open - openBefore).toBe(150);
    // A stream cut the moment its headers arrive has no tick yet; a moment later each has some.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await call(base, 'POST', `/v1/sessions/${session.id}/logoff`, ada.token)).status).toBe(200);
    const ended = await Promise.all(reads);
    expect(ended.map((r) => `${r.status} ${r.broken}`)).toEqual(Array.from({ length: 150 }, () => '200 true'));
  });
});

describe('the record', () => {
  it('counts requests, bytes each way and connections cut, in the view, the history and the marketing log', async () => {
    const ada = await customer(base);
    const session = await openSession(base, ada.token, { serviceId: service.id, maxCharge: '5.00' });
    expect((await fetch(through(session.access, '/json'), { headers: bearer(session.access.token) })).status).toBe(200);
    const echoed = await fetch(through(session.access, '/echo'), { method: 'POST', headers: { ...bearer(session.access.token), 'content-type': 'text/plain' }, body: 'y'.repeat(1000) });
    expect((await echoed.text()).length).toBe(1000);
    const reading = readUntilEnd(through(session.access, '/events'), session.access.token);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await call(base, 'POST', `/v1/sessions/${session.id}/logoff`, ada.token)).status).toBe(200);
    expect((await reading).broken).toBe(true);

    const viewed = await call(base, 'GET', `/v1/sessions/${session.id}`, ada.token);
    expect(viewed.body.traffic).toMatchObject({ requests: 3, bytesIn: 1000, connectionsCut: 1 });
    expect(viewed.body.traffic.bytesOut).toBeGreaterThan(1000);

    let line: { event: string; to: string; detail: unknown } | undefined;
    for (let i = 0; i < 40 && !line; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const ops = await call(base, 'GET', `/v1/ops/sessions/${session.id}`, tollgate.adminToken);
      line = ops.body.history.find((h: { event: string }) => h.event === 'edge.access_ended');
    }
    expect(line).toMatchObject({ to: 'logoff', detail: viewed.body.traffic });
    const log = await call(base, 'GET', '/v1/ops/session-log?limit=1000', tollgate.adminToken);
    const row = log.body.sessions.find((s: { sessionId: string }) => s.sessionId === session.id);
    expect(row).toMatchObject(viewed.body.traffic);
  });
});
