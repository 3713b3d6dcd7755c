export { accountMachine, ACCOUNT_MACHINE_VERSION, type AccountSnapshot } from './account.machine.js';
export { accountDeadlineOf, accountStateOf } from './account.deadline.js';
export { accountEventSchema } from './account.events.js';
export type * from './account.types.js';
