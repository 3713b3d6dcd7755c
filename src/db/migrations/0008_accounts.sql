-- Issue 14: an account has a state, kept by the account machine (machines/account) and stored as
-- sessions are: the persisted snapshot with its machine version, a transition number, and a
-- history line per change saying who made it and why.

alter table accounts
  add column state text not null default 'active',
  -- What the machine's tags said at the last change, for SQL to read without naming states:
  -- whether new sessions may open (checked under the row lock by the statement that opens one).
  add column may_open boolean not null default true,
  -- A suspension with an end: the instant the account resumes by itself (a deadline as data).
  add column resumes_at timestamptz,
  add column machine_version integer,
  -- Null for accounts made before this migration: active since they were made (account-rows.ts).
  add column snapshot jsonb,
  add column seq integer not null default 0,
  add column closed_at timestamptz;
create index accounts_resuming on accounts (resumes_at) where resumes_at is not null;

create table account_events (
  id bigserial primary key,
  account_id uuid not null references accounts (id),
  seq integer not null,
  event text not null,
  from_state text,
  to_state text not null,
  at timestamptz not null,
  -- Who: the customer, an operator (their id and name as they were), or tollgate itself.
  by_kind text not null check (by_kind in ('customer', 'operator', 'system')),
  by_id text,
  by_name text not null,
  reason text not null,
  unique (account_id, seq)
);

-- Webhooks (operators register endpoints for domain event types). The secret signs deliveries,
-- so it is kept as it is (it is tollgate's to share, not a credential the endpoint proves).
create table webhook_endpoints (
  id uuid primary key,
  url text not null,
  event_types text[] not null,
  secret text not null,
  created_at timestamptz not null,
  created_by uuid references operators (id),
  disabled_at timestamptz
);

-- One delivery per endpoint and event, written by the durable consumer in the transaction that
-- moves its position: each event is queued once per endpoint, then sent at least once.
create table webhook_deliveries (
  id bigserial primary key,
  endpoint_id uuid not null references webhook_endpoints (id),
  event_position bigint not null references domain_events (position),
  event_type text not null,
  state text not null check (state in ('pending', 'delivered', 'failed')),
  attempts integer not null default 0,
  next_attempt_at timestamptz not null,
  created_at timestamptz not null,
  delivered_at timestamptz,
  unique (endpoint_id, event_position)
);
create index webhook_deliveries_due on webhook_deliveries (next_attempt_at) where state = 'pending';

-- The delivery log: every attempt, its answer or why there was none.
create table webhook_attempts (
  id bigserial primary key,
  delivery_id bigint not null references webhook_deliveries (id),
  attempt integer not null,
  at timestamptz not null,
  status_code integer,
  error text,
  duration_ms integer not null
);
create index webhook_attempts_delivery on webhook_attempts (delivery_id, id);

-- Ways to pay: per-session card holds (as before), a prepaid balance topped up by card charges
-- (sessions hold from the balance: no card call at open), or postpaid (set by operators).
alter table accounts
  add column payment_mode text not null default 'card' check (payment_mode in ('card', 'prepaid', 'postpaid')),
  -- The prepaid balance free to hold, and what open sessions hold of it.
  add column balance_micros bigint not null default 0 check (balance_micros >= 0),
  add column balance_held_micros bigint not null default 0 check (balance_held_micros >= 0);

-- A hold on the prepaid balance, kept as the card network keeps one: keyed by the idempotency key
-- of the call that placed it, so a call re-driven after a crash finds it instead of holding twice.
create table balance_holds (
  id text primary key,
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
  lines jsonb not null,
  produced_at timestamptz not null,
  unique (account_id, period_start)
);
