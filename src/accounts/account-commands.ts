import { accountStateOf, type AccountChanger, type AccountEvent, type AccountSnapshot } from '../../machines/account/index.js';
import { recordAudit } from '../audit/audit-log.js';
import { formatAmount, type Micros } from '../billing/money.js';
import type { Clock } from '../clock.js';
import type { Sql, TransactionSql } from '../db/sql.js';
import { errors } from '../errors.js';
import { unpaidStatements } from '../statements/statement-sql.js';
import type { Actor } from '../operators/roles.js';
import type { AccountStates } from './account-states.js';
import type { PaymentMode } from '../payments/balance-gateway.js';

type Change = { kind: 'suspend'; until: number | null } | { kind: 'resume' } | { kind: 'close' };

const isoOrNull = (at: number | null | undefined) => (at === null || at === undefined ? null : new Date(at).toISOString());

/**
 * What customers and operators ask of an account's state: one event to its machine, and the
 * machine's refusal turned into an answer. Operators' changes are also written to the audit log.
 */
export class AccountCommands {
  constructor(private readonly deps: { sql: Sql; clock: Clock; states: AccountStates }) {}

  /** The customer closes their own account (refused while a session is unsettled). */
  close(accountId: string, customer: { name: string }, reason: string): Promise<void> {
    return this.apply(accountId, { kind: 'close' }, { kind: 'customer', id: accountId, name: customer.name }, reason);
  }

  async byOperator(accountId: string, change: Change, operator: { actor: Actor; requestId?: string | undefined }, reason: string): Promise<void> {
    const by: AccountChanger = { kind: 'operator', id: operator.actor.operatorId, name: operator.actor.name };
    // Written with the change, from the states found under the account's lock: two operators'
    // changes at once are audited each with the state the other left (an outside probe saw two
    // suspensions both audited as from active, read before either took the lock).
    await this.apply(accountId, change, by, reason, (tx, before, after) =>
      recordAudit(tx, {
        ...operator,
        action: `account.${change.kind}`,
        targetType: 'account',
        targetId: accountId,
        // Instants as ISO text, as every other audited time.
        before: { state: accountStateOf(before), resumesAt: isoOrNull(before.context.resumesAt) },
        after: { state: accountStateOf(after), resumesAt: isoOrNull(after.context.resumesAt), reason },
        at: this.deps.clock.now(),
      }),
    );
  }

  /**
   * How the account pays, as an operator sets it: postpaid (trusted: sessions are not held to the
   * outstanding limit and are charged with the statement) is theirs alone to give. Sessions already
   * running settle where their holds are.
   */
  async setPaymentMode(accountId: string, mode: PaymentMode, operator: { actor: Actor; requestId?: string | undefined }, reason: string): Promise<void> {
    const at = this.deps.clock.now();
    const [row] = await this.deps.sql<{ before: PaymentMode }[]>`
      update accounts a set payment_mode = ${mode} from accounts b where a.id = ${accountId} and b.id = a.id and b.state <> 'closed'
      returning b.payment_mode as before`;
    if (!row) {
      // A closed account pays for nothing more: its mode stays what it closed with.
      const [account] = await this.deps.sql`select 1 from accounts where id = ${accountId}`;
      throw account ? errors.accountNotActive('closed') : errors.accountNotFound();
    }
    // The mode it already had: answered, not recorded.
    if (row.before === mode) return;
    await recordAudit(this.deps.sql, {
      ...operator,
      action: 'account.payment_mode',
      targetType: 'account',
      targetId: accountId,
      before: { paymentMode: row.before },
      after: { paymentMode: mode, reason },
      at,
    });
  }

  private async apply(
    accountId: string,
    change: Change,
    by: AccountChanger,
    reason: string,
    taken?: (tx: TransactionSql, before: AccountSnapshot, after: AccountSnapshot) => Promise<void>,
  ): Promise<void> {
    const at = this.deps.clock.now();
    const eventOf = (unsettledSessions: number): AccountEvent => {
      switch (change.kind) {
        case 'suspend':
          return { type: 'SUSPEND', at, by, reason, until: change.until };
        case 'resume':
          return { type: 'RESUME', at, by, reason };
        case 'close':
          return { type: 'CLOSE', at, by, reason, unsettledSessions };
      }
    };
    const outcome = await this.deps.states.change(accountId, async (row, tx) => {
      // What a statement owes (declined, or its charge still on its way) is not left behind by the
      // customer's own close: checked under the account's lock, in the close's transaction. An
      // operator may still close it.
      if (change.kind === 'close' && by.kind === 'customer') {
        const unpaid = await unpaidStatements(tx, accountId);
        if (unpaid) throw errors.statementUnpaid(formatAmount((unpaid.declinedMicros + unpaid.pendingMicros) as Micros), unpaid.pendingMicros > 0n);
      }
      return eventOf(row.openSessions);
    }, taken);
    if (outcome.taken) return;
    // Refused: had no session been unsettled, would the machine have closed it?
    if (change.kind === 'close' && outcome.snapshot.can(eventOf(0))) throw errors.accountHasUnsettledSessions(outcome.row.openSessions);
    const state = accountStateOf(outcome.snapshot);
    // Resuming an account that is not suspended (an outside probe was told an active one was "not active").
    if (change.kind === 'resume' && state !== 'closed' && state !== 'suspended') throw errors.accountNotSuspended(state);
    throw errors.accountNotActive(state);
  }
}
