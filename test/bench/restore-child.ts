import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { systemClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config.js';
import { startTollgate } from '../../src/runtime.js';
import { serveParent } from './child.js';
import { instrumentHandlers, settledMemory } from './instrument.js';

/**
 * Phase 4's process: a fresh tollgate started on a database full of unsettled sessions, as after
 * a crash. It times startTollgate (migrations, catalogue, Supervisor.restore of every unsettled
 * row with its seat and deadline, reconciliation with the card network) and reports.
 */
const moduleSeconds = performance.now() / 1000;
const config = loadConfig({ ...process.env, LOG_LEVEL: 'silent', TOLLGATE_SEED_DEMO: 'false' });
// BENCH_PROFILE_FILE: a CPU profile of startTollgate (a separate run: the timed one is not profiled).
const profileFile = process.env.BENCH_PROFILE_FILE;
const profiler = profileFile ? new Session() : null;
if (profiler) {
  profiler.connect();
  await profiler.post('Profiler.enable');
  await profiler.post('Profiler.setSamplingInterval', { interval: 1000 });
  await profiler.post('Profiler.start');
}
const started = performance.now();
const tollgate = await startTollgate(config, { clock: systemClock, log: false });
const startSeconds = (performance.now() - started) / 1000;
if (profiler && profileFile) {
  const { profile } = await profiler.post('Profiler.stop');
  profiler.disconnect();
  await writeFile(profileFile, JSON.stringify(profile));
}
// performance.now() counts from the process's start: module loading included.
const processSeconds = performance.now() / 1000;
const restored = tollgate.supervisor.liveCount;
const memory = await settledMemory();

serveParent(
  { startSeconds, restored, moduleSeconds, processSeconds, memory },
  {
    ...instrumentHandlers,
    close: async () => {
      await tollgate.close();
      return true;
    },
  },
);
