-- What the merchant attached at authorization (tollgate's session id), so that after a
-- crash tollgate can find which open holds belong to which session.
alter table card_network.holds
  add column reference text check (reference is null or length(reference) <= 200);
create index holds_reference_idx on card_network.holds (reference) where reference is not null;

-- Reconciliation asks for every open hold; the closed ones pile up and are never asked for.
create index holds_open_idx on card_network.holds (expires_at) where state = 'open';

-- Incremental authorizations, one row per raise, so a test (or a dispute) can see how a
-- hold grew rather than only where it ended.
create table card_network.increments (
  id text primary key,
  hold_id text not null references card_network.holds (id),
  from_micros bigint not null check (from_micros > 0),
  to_micros bigint not null check (to_micros > from_micros),
  created_at timestamptz not null
);
create index increments_hold_idx on card_network.increments (hold_id, created_at);

-- Fault-injection rules are not stored: they belong to one sandbox process and vanish with it.
