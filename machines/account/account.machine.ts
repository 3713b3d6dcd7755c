import { assign, setup, type SnapshotFrom } from 'xstate';
import type { AccountContext, AccountEvent, AccountInput, AccountTag } from './account.types.js';

/** Stored with every snapshot; bump it (with a migration and a fixture) when a snapshot's shape changes. */
export const ACCOUNT_MACHINE_VERSION = 1;

type Changing = Extract<AccountEvent, { at: number }>;

const recorded = (event: Changing) => ({ event: event.type, at: event.at, by: event.by, reason: event.reason });

/**
 * A customer's account: new (card not yet verified) → active ⇄ suspended → closed. Pure: time
 * comes in with each event, and what a state means for sessions is said by tags, which the host
 * reads (it opens none where `opens` is missing, and ends running ones where `ends_sessions` is).
 * A suspension may carry its end (`resumesAt`), which the host schedules and answers with a
 * RESUME from tollgate itself, as session deadlines are.
 */
export const accountMachine = setup({
  types: {
    context: {} as AccountContext,
    input: {} as AccountInput,
    events: {} as AccountEvent,
    tags: {} as AccountTag,
  },
  guards: {
    /** Closing ends nothing: every session must have settled first. */
    noUnsettledSessions: ({ event }) => event.type === 'CLOSE' && event.unsettledSessions === 0,
    /**
     * tollgate resumes an account only at its suspension's end; a deadline that fires late for an
     * earlier suspension (the account was suspended again for longer) changes nothing.
     */
    resumeAllowed: ({ context, event }) =>
      event.type === 'RESUME' && (event.by.kind !== 'system' || (context.resumesAt !== null && event.at >= context.resumesAt)),
  },
  actions: {
    entered: assign(({ event }) => {
      const change = event as Changing;
      return { since: change.at, lastChange: recorded(change), resumesAt: null };
    }),
    suspended: assign(({ event }) => {
      const change = event as Extract<AccountEvent, { type: 'SUSPEND' }>;
      return { since: change.at, lastChange: recorded(change), resumesAt: change.until };
    }),
    closed: assign(({ event }) => {
      const change = event as Changing;
      return { since: change.at, lastChange: recorded(change), resumesAt: null, closedAt: change.at };
    }),
  },
}).createMachine({
  id: 'account',
  context: ({ input }) => ({
    accountId: input.accountId,
    createdAt: input.createdAt,
    since: input.createdAt,
    lastChange: null,
    resumesAt: null,
    closedAt: null,
  }),
  initial: 'new',
  states: {
    new: {
      tags: ['self_service'],
      on: {
        CARD_VERIFIED: { target: 'active', actions: 'entered' },
        CLOSE: { guard: 'noUnsettledSessions', target: 'closed', actions: 'closed' },
      },
    },
    active: {
      tags: ['opens', 'self_service'],
      on: {
        SUSPEND: { target: 'suspended', actions: 'suspended' },
        CLOSE: { guard: 'noUnsettledSessions', target: 'closed', actions: 'closed' },
      },
    },
    suspended: {
      tags: ['ends_sessions', 'self_service'],
      on: {
        // Suspended again: the new reason and end replace the old ones (nothing is entered or left).
        SUSPEND: { actions: 'suspended' },
        RESUME: { guard: 'resumeAllowed', target: 'active', actions: 'entered' },
        CLOSE: { guard: 'noUnsettledSessions', target: 'closed', actions: 'closed' },
      },
    },
    closed: {
      type: 'final',
      tags: ['ends_sessions'],
    },
  },
});

export type AccountSnapshot = SnapshotFrom<typeof accountMachine>;
