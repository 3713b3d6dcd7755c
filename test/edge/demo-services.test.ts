import { afterAll, beforeAll, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';
import { call, customer, listen, openSession, readUntilEnd } from './edge-client.js';

let tollgate: TestTollgate;
let base: string;

beforeAll(async () => {
  tollgate = await startTestTollgate({ env: { TOLLGATE_SEED_DEMO: 'true', TOLLGATE_DEMO_UPSTREAMS: 'true' } });
  base = await listen(tollgate);
});
afterAll(async () => {
  await tollgate.stop();
});

const serviceNamed = async (name: string) => ((await call(base, 'GET', '/v1/services', null)).body.services as { id: string; name: string }[]).find((s) => s.name === name)!.id;

it('serves the demo catalogue through the edge: text statistics, a render job cut at its cutoff, a chat closed with 4402', async () => {
  const ada = await customer(base);
  const stats = await openSession(base, ada.token, { serviceId: await serviceNamed('genome-aligner'), maxMinutes: 1 });
  const answer = await fetch(`${stats.access.url}/stats`, { method: 'POST', headers: { authorization: `Bearer ${stats.access.token}`, 'content-type': 'text/plain' }, body: 'to be or not to be' });
  expect(answer.status).toBe(200);
  expect(await answer.json()).toMatchObject({ words: 6, top: [{ word: 'be', count: 2 }, { word: 'to', count: 2 }, { word: 'not', count: 1 }, { word: 'or', count: 1 }] });

  const render = await openSession(base, ada.token, { serviceId: await serviceNamed('render-farm'), maxMinutes: 2 / 60 });
  const read = await readUntilEnd(`${render.access.url}/render?frames=100`, render.access.token);
  expect(read.text).toContain('event: progress');
  expect(read.text).not.toContain('event: done');
  expect(read.endedAt - Date.parse(render.cutoffAt)).toBeLessThan(1000);

  const chat = await openSession(base, ada.token, { serviceId: await serviceNamed('cad-studio'), maxMinutes: 2 / 60 });
  const socket = new WebSocket(`${chat.access.url.replace('http', 'ws')}/?access_token=${chat.access.token}`);
  const messages: string[] = [];
  socket.on('message', (data) => messages.push(String(data)));
  socket.once('open', () => socket.send('hello'));
  const closed = await new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
  expect(closed).toBe(4402);
  expect(messages.some((m) => m.includes('hello'))).toBe(true);
});
