export { gateMachine, type GateEvent, type GateEmitted } from './gate.machine.js';
export * from './gate.logic.js';
