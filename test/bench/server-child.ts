import { systemClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config.js';
import { startTollgate } from '../../src/runtime.js';
import { serveParent } from './child.js';
import { instrumentHandlers } from './instrument.js';

/**
 * tollgate as `npm start` runs it (startTollgate + listen), on the benchmark's database and
 * card-network sandbox, listening on a free loopback port. The parent drives it over HTTP.
 */
const config = loadConfig({
  ...process.env,
  PORT: '0',
  HOST: '127.0.0.1',
  LOG_LEVEL: 'silent',
  TOLLGATE_SEED_DEMO: 'false',
});
const tollgate = await startTollgate(config, { clock: systemClock, log: false });
await tollgate.app.listen({ port: 0, host: '127.0.0.1' });
const address = tollgate.app.server.address();
const port = typeof address === 'object' && address ? address.port : 0;

serveParent(
  { url: `http://127.0.0.1:${port}`, cardNetworkUrl: tollgate.cardNetworkUrl },
  {
    ...instrumentHandlers,
    live: () => tollgate.supervisor.liveCount,
    'edge-cut-lateness': () => [...tollgate.live.cutLateness()],
    close: async () => {
      await tollgate.close();
      return true;
    },
  },
);
