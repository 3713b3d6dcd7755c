-- The journal (issue 10): every transition of a session carries its number, so writing it a
-- second time (a commit whose answer was lost, then retried) changes nothing.
alter table sessions add column seq integer not null default 0;
alter table sessions add column path text;
-- A call the card company refused for good: the session waits for an operator.
alter table sessions add column stuck_reason text;
alter table sessions add column closing_since timestamptz;
alter table sessions add column close_attempts integer not null default 0;
update sessions set path = state;
create index sessions_authorizing on sessions (updated_at) where state = 'authorizing';

alter table session_events add column seq integer;
create unique index session_events_seq on session_events (session_id, seq) where seq is not null;

-- Sessions this process could not run: writes that kept failing (with the newest snapshot it
-- had, so nothing the customer did is lost), or a snapshot this build cannot read. Kept apart
-- from `sessions`, so a fault that refuses writes to a session's row does not refuse this one.
create table session_quarantine (
  session_id uuid primary key references sessions (id),
  kind text not null check (kind in ('write_failed', 'unreadable')),
  reason text not null,
  pending_snapshot jsonb,
  pending_version integer,
  since timestamptz not null
);

-- Domain events (DESIGN rule 14). `tx` is the writing transaction's id: a reader that stops at
-- the oldest transaction still running never skips an event committed late with a smaller
-- position, so reading in (tx, position) order below that horizon is gap-free.
create table domain_events (
  position bigserial primary key,
  tx xid8 not null default pg_current_xact_id(),
  event_key text not null unique,
  stream text not null,
  type text not null,
  at timestamptz not null,
  payload jsonb not null
);
create index domain_events_order on domain_events (tx, position);
create index domain_events_stream on domain_events (stream, position);

-- Where each durable consumer of domain events has got to.
create table event_consumers (
  name text primary key,
  tx xid8 not null,
  position bigint not null,
  updated_at timestamptz not null
);

-- Idempotency-Key (as Stripe's API): the first answer to a key, replayed to retries.
create table idempotency_keys (
  account_id uuid not null references accounts (id),
  key text not null,
  request_hash bytea not null,
  -- The session an open made (or is making), so a retry after a crash finds it.
  resource_id uuid,
  owner text,
  claimed_at timestamptz not null,
  status_code integer,
  response jsonb,
  completed_at timestamptz,
  primary key (account_id, key)
);
create index idempotency_keys_age on idempotency_keys (claimed_at);
