import Fastify from 'fastify';
import { setTimeout as sleep } from 'node:timers/promises';
const app = Fastify();
app.post('/slow', async () => { await sleep(400); return { ok: 1 }; });
app.post('/fast', async () => ({ ok: 1 }));
await app.listen({ port: 0, host: '127.0.0.1' });
const url = `http://127.0.0.1:${(app.server.address() as any).port}`;
const mode = process.argv[2];
if (mode === 'pre') for (let i = 0; i < 3; i++) await (await fetch(url + '/fast', { method: 'POST', headers: {'content-type':'application/json'}, body: '{}' })).text();
try { await fetch(url + '/slow', { method: 'POST', headers: {'content-type':'application/json'}, body: '{}', signal: AbortSignal.timeout(200) }); } catch (e) { console.log('aborted', (e as Error).name); }
await (await fetch(url + '/fast', { method: 'POST', headers: {'content-type':'application/json'}, body: '{}' })).text();
await sleep(600);
console.log('closing');
const t = setTimeout(() => { console.log('HANG'); process.exit(1); }, 3000);
await app.close();
clearTimeout(t);
console.log('closed');
