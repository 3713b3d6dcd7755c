export {
  sessionMachine,
  SESSION_MACHINE_VERSION,
  termsOf,
  retryDelayMs,
  billableMs,
  renewAtOf,
} from './session.machine.js';
export {
  deadlineOf,
  holdsSeat,
  stateNameOf,
  subStateOf,
  type DeadlineEvent,
  type SessionSnapshot,
  type SessionStateName,
} from './session.deadline.js';
export { sessionEventSchema } from './session.events.js';
export { migrateSessionSnapshot } from './session.migrations.js';
export type * from './session.types.js';
