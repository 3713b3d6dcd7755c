export { sessionMachine, SESSION_MACHINE_VERSION, resolveSnapshot } from './session.machine.js';
export { termsOf, retryDelayMs, billableMs, renewAtOf, extensionRefusal, type SessionTag } from './session.setup.js';
export {
  deadlineOf,
  stateNameOf,
  statePathOf,
  type DeadlineEvent,
  type SessionSnapshot,
  type SessionStateName,
} from './session.deadline.js';
export { bookingsOf, reservationOf, type Booking, type SessionFacts } from './session.bookings.js';
export { domainEventsOf, openedEvent, type SessionDomainEvent, type SessionDomainEventType, type TaggedFacts } from './session.domain-events.js';
export { sessionEventSchema } from './session.events.js';
export { END_REASONS } from './session.types.js';
export { usesLeave } from './session.terms.js';
export { migrateSessionSnapshot, UnknownSnapshotVersionError } from './session.migrations.js';
export type * from './session.types.js';
