import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { accountDeadlineOf, accountStateOf, type AccountEvent, type AccountSnapshot } from '../../machines/account/index.js';
import { accountActorOf, UnknownAccountVersionError } from '../../src/accounts/account-rows.js';

/**
 * Every stored account snapshot of every machine version (DESIGN rule 7) is restored as a row would
 * be, and driven to where its state leads: a machine change that breaks old rows fails here.
 */
const FIXTURES = new URL('./fixtures/', import.meta.url);
const files = readdirSync(FIXTURES).filter((name) => /^account-v\d+-[a-z]+\.json$/.test(name));
const START = Date.UTC(2026, 10, 30, 9, 0, 0);
const tollgate = { kind: 'system', id: null, name: 'tollgate' } as const;

const row = (name: string) => {
  const [, version, state] = /^account-v(\d+)-([a-z]+)\.json$/.exec(name)!;
  const snapshot = JSON.parse(readFileSync(new URL(name, FIXTURES), 'utf8')) as AccountSnapshot;
  return { state: state!, row: { id: snapshot.context.accountId, createdAt: new Date(snapshot.context.createdAt), machineVersion: Number(version), snapshot } };
};

/** What each state is driven by, and where it must end. */
const NEXT: Record<string, (snapshot: AccountSnapshot) => { event: AccountEvent; to: string } | null> = {
  new: () => ({ event: { type: 'CARD_VERIFIED', at: START, by: tollgate, reason: 'card checked' }, to: 'active' }),
  active: () => ({ event: { type: 'CLOSE', at: START, by: tollgate, reason: 'closing', unsettledSessions: 0 }, to: 'closed' }),
  suspended: (s) => ({ event: { type: 'RESUME', at: accountDeadlineOf(s)!.at, by: tollgate, reason: 'suspension ended' }, to: 'active' }),
  closed: () => null,
};

describe('account snapshot fixtures', () => {
  it('cover every state of the current version', () => {
    expect(files.filter((f) => f.startsWith('account-v1-')).sort()).toEqual(['account-v1-active.json', 'account-v1-closed.json', 'account-v1-new.json', 'account-v1-suspended.json']);
  });

  it.each(files)('%s restores and goes on', (name) => {
    const { state, row: stored } = row(name);
    const actor = accountActorOf(stored);
    expect(accountStateOf(actor.getSnapshot())).toBe(state);
    const next = NEXT[state]!(actor.getSnapshot());
    if (next === null) {
      expect(actor.getSnapshot().status).toBe('done');
      return;
    }
    expect(actor.getSnapshot().can(next.event)).toBe(true);
    actor.send(next.event);
    expect(accountStateOf(actor.getSnapshot())).toBe(next.to);
  });

  it('refuses a snapshot of a version this build does not know', () => {
    const { row: stored } = row('account-v1-active.json');
    expect(() => accountActorOf({ ...stored, machineVersion: 99 })).toThrow(UnknownAccountVersionError);
  });

  it('restores an account made before accounts had states as active since it was made', () => {
    const actor = accountActorOf({ id: 'a0000000-0000-4000-8000-0000000000aa', createdAt: new Date(START), machineVersion: null, snapshot: null });
    expect(accountStateOf(actor.getSnapshot())).toBe('active');
    expect(actor.getSnapshot().context.since).toBe(START);
  });
});
