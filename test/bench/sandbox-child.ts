import { systemClock } from '../../src/clock.js';
import { connect } from '../../src/db/sql.js';
import { startCardNetwork } from '../../src/payments/sandbox/start.js';
import { serveParent } from './child.js';
import { instrumentHandlers } from './instrument.js';

/**
 * The card-network sandbox in a process of its own (as `npm run card-network` runs it), on the
 * same database as the tollgate it serves: tollgate reaches it over loopback HTTP only, as it
 * would a real card company, and its CPU and memory are not counted as tollgate's.
 */
const url = process.env.DATABASE_URL;
if (!url) throw new Error('DATABASE_URL is required');
const sql = connect(url, { max: Number(process.env.SANDBOX_POOL_SIZE ?? 20) });
const network = await startCardNetwork({ sql, clock: systemClock, port: 0, logger: false, latencyMs: Number(process.env.CARD_NETWORK_LATENCY_MS ?? 0) });

serveParent(
  { url: network.url },
  {
    ...instrumentHandlers,
    close: async () => {
      await network.close();
      await sql.end({ timeout: 5 });
      return true;
    },
  },
);
