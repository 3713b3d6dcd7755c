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
