export { sessionMachine, SESSION_MACHINE_VERSION, termsOf, retryDelayMs } from './session.machine.js';
export { deadlineOf, stateNameOf, type SessionSnapshot, type SessionStateName } from './session.deadline.js';
export { sessionEventSchema } from './session.events.js';
export type * from './session.types.js';
