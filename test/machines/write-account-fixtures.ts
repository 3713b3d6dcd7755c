// Writes a persisted snapshot of every reachable account state, for this machine version, into
// test/machines/fixtures (run with `npx tsx test/machines/write-account-fixtures.ts` when the
// version is bumped; earlier versions' fixtures stay, and account-fixtures.test.ts restores them all).
import { writeFileSync } from 'node:fs';
import { createActor } from 'xstate';
import { ACCOUNT_MACHINE_VERSION, accountMachine, accountStateOf, type AccountChanger } from '../../machines/account/index.js';

const START = Date.UTC(2026, 10, 30, 9, 0, 0);
const customer: AccountChanger = { kind: 'customer', id: 'a0000000-0000-4000-8000-0000000000aa', name: 'Ada Lovelace' };
const operator: AccountChanger = { kind: 'operator', id: 'a0000000-0000-4000-8000-0000000000ee', name: 'grace-support' };

const actor = createActor(accountMachine, { input: { accountId: customer.id!, createdAt: START } }).start();
const write = () => {
  const file = new URL(`./fixtures/account-v${ACCOUNT_MACHINE_VERSION}-${accountStateOf(actor.getSnapshot())}.json`, import.meta.url);
  writeFileSync(file, `${JSON.stringify(actor.getPersistedSnapshot(), null, 2)}\n`);
};
write();
actor.send({ type: 'CARD_VERIFIED', at: START, by: customer, reason: 'card checked by the card company at sign-up' });
write();
actor.send({ type: 'SUSPEND', at: START + 60_000, by: operator, reason: 'chargeback under review', until: START + 86_400_000 });
write();
actor.send({ type: 'CLOSE', at: START + 120_000, by: operator, reason: 'fraud confirmed', unsettledSessions: 0 });
write();
