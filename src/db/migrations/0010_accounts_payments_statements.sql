-- Issue 14, continued. 0008_accounts.sql was merged into main before these were written, and a
-- migration once applied somewhere is never changed: they come here.

-- Ways to pay: per-session card holds (as before), a prepaid balance topped up by card charges
-- (sessions hold from the balance: no card call at open), or postpaid (set by operators).
alter table accounts
  add column payment_mode text not null default 'card' check (payment_mode in ('card', 'prepaid', 'postpaid')),
  -- The prepaid balance free to hold, and what open sessions hold of it.
  add column balance_micros bigint not null default 0 check (balance_micros >= 0),
  add column balance_held_micros bigint not null default 0 check (balance_held_micros >= 0);

-- A hold on the prepaid balance, kept as the card network keeps one: keyed by the idempotency key
-- of the call that placed it, so a call re-driven after a crash finds it instead of holding twice.
-- A postpaid account's sessions hold the same way, on nothing: their captures are owed, and
-- charged to the card with the period's statement.
create table balance_holds (
  id text primary key,
  kind text not null check (kind in ('prepaid', 'postpaid')),
  authorize_key text not null unique,
  account_id uuid not null references accounts (id),
  session_id uuid not null,
  amount_micros bigint not null check (amount_micros >= 0),
  captured_micros bigint,
  state text not null check (state in ('open', 'captured', 'voided')),
  created_at timestamptz not null,
  closed_at timestamptz
);
create index balance_holds_account on balance_holds (account_id);

-- A top-up: the intent is written before the card is charged (DESIGN rule 3); the balance grows in
-- the transaction that marks it charged. Pending ones are driven again at start-up, with the same keys.
create table top_ups (
  id uuid primary key,
  account_id uuid not null references accounts (id),
  amount_micros bigint not null check (amount_micros > 0),
  currency char(3) not null,
  state text not null check (state in ('pending', 'charged', 'declined')),
  charge_id text,
  authorization_number text,
  decline_reason text,
  created_at timestamptz not null,
  settled_at timestamptz
);
create index top_ups_account on top_ups (account_id, created_at);
create index top_ups_pending on top_ups (created_at) where state = 'pending';

-- Statements per account and period (UTC months by default, ISO weeks on request). The account
-- keeps the period not yet stated: [statement_from, statement_due_at); the statement job produces
-- it once statement_due_at has passed. A new period length applies from the next period.
alter table accounts
  add column statement_period text not null default 'month' check (statement_period in ('month', 'week')),
  -- The length of the period under way (statement_period applies from the next one).
  add column statement_current_period text not null default 'month' check (statement_current_period in ('month', 'week')),
  add column statement_from timestamptz,
  add column statement_due_at timestamptz;
update accounts set
  statement_from = date_trunc('month', created_at, 'UTC'),
  statement_due_at = date_trunc('month', created_at, 'UTC') + interval '1 month';
alter table accounts alter column statement_from set not null, alter column statement_due_at set not null;
create index accounts_statement_due on accounts (statement_due_at);

-- One statement per account and period, whoever produces it and however often it is tried.
create table statements (
  id uuid primary key,
  account_id uuid not null references accounts (id),
  period text not null check (period in ('month', 'week')),
  period_start timestamptz not null,
  period_end timestamptz not null,
  currency char(3) not null,
  -- What the period's sessions were charged (captured), and how it was paid; top-ups charged to the card.
  charges_micros bigint not null,
  paid_by_card_micros bigint not null,
  paid_from_balance_micros bigint not null,
  top_ups_micros bigint not null,
  -- Postpaid: what the period's sessions owe, charged to the card once the statement exists (the
  -- statement is the intent; the charge's keys derive from its id).
  due_micros bigint not null,
  charge_state text not null check (charge_state in ('none', 'pending', 'charged', 'declined')),
  charge_id text,
  charge_decline_reason text,
  lines jsonb not null,
  produced_at timestamptz not null,
  unique (account_id, period_start)
);
create index statements_charge_pending on statements (produced_at) where charge_state = 'pending';
