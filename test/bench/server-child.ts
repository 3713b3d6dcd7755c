import { systemClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config.js';
import { startTollgate } from '../../src/runtime.js';
import { serveParent } from './child.js';
import { instrumentHandlers } from './instrument.js';

/**
 * tollgate as `npm start` runs it (startTollgate + listen), on the benchmark's database and
 * card-network sandbox, listening on a free loopback port (or on PORT: a cluster node's address
 * is known before it starts, CLUSTER_NODE_URL). The parent drives it over HTTP.
 */
const listenPort = Number(process.env.PORT ?? 0);
const config = loadConfig({
  ...process.env,
  PORT: String(listenPort),
  HOST: '127.0.0.1',
  LOG_LEVEL: 'silent',
  TOLLGATE_SEED_DEMO: 'false',
});
const tollgate = await startTollgate(config, { clock: systemClock, log: false });
await tollgate.app.listen({ port: listenPort, host: '127.0.0.1' });
const address = tollgate.app.server.address();
const port = typeof address === 'object' && address ? address.port : 0;

serveParent(
  { url: `http://127.0.0.1:${port}`, cardNetworkUrl: tollgate.cardNetworkUrl },
  {
    ...instrumentHandlers,
    live: () => tollgate.supervisor.liveCount,
    'edge-cut-lateness': () => [...tollgate.live.cutLateness()],
    // A cluster node: the servers it answers for, and whom it believes owns each of `serverIds`.
    cluster: ({ serverIds }: { serverIds: string[] }) => {
      const leases = tollgate.leases;
      if (!leases) return null;
      return {
        serving: serverIds.filter((id) => leases.serves(id)),
        owners: Object.fromEntries(serverIds.map((id) => [id, leases.ownerOf(id)?.nodeId ?? null])),
      };
    },
    close: async () => {
      await tollgate.close();
      return true;
    },
  },
);
