/**
 * Writes a stored snapshot of every reachable state of the current machine version into
 * fixtures/, as `session-v<version>-<state path>.json`. Run it once when a version is made
 * (`npx tsx test/machines/write-fixtures.ts`), or when a version gains a state; the files are
 * then the record of what that version stored, and test/machines/session-fixtures.test.ts
 * restores them for ever after. A fixture that exists is never rewritten: only missing ones are written.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { SESSION_MACHINE_VERSION, statePathOf } from '../../machines/session/index.js';
import { REACHABLE_STATES } from './session-states.js';

for (const { path, reach } of REACHABLE_STATES) {
  const file = new URL(`./fixtures/session-v${SESSION_MACHINE_VERSION}-${path}.json`, import.meta.url);
  if (existsSync(file)) continue;
  const session = await reach();
  const reached = statePathOf(session.actor.getSnapshot().value);
  if (reached !== path) throw new Error(`reached ${reached}, not ${path}`);
  writeFileSync(file, `${JSON.stringify(session.persisted(), null, 2)}\n`);
  session.actor.stop();
}
