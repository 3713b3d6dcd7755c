-- Tariffs (issue 13): a service's default price per minute stays in price_per_minute_micros;
-- `pricing` holds the rest (time zone, rules by weekday and hour, billing increments and
-- minimum, the price per use). Null: one price all day, per second, no price per use.
alter table services add column pricing jsonb;

-- What usage reports count, kept with the row when a session ends (billable time leaves out
-- pauses over the limit; uses are those committed).
alter table sessions add column billable_ms bigint;
alter table sessions add column uses_units integer not null default 0;
alter table sessions add column uses_micros bigint not null default 0;
create index sessions_service_started on sessions (service_id, started_at) where started_at is not null;
create index sessions_account_started on sessions (account_id, started_at) where started_at is not null;

-- A price agreed before use (the CMU billing server's price agreement): the tariff as it was,
-- what the agreed use costs, and the session that used it (once).
create table quotes (
  id uuid primary key,
  account_id uuid not null references accounts (id),
  service_id uuid not null references services (id),
  tariff jsonb not null,
  start_at timestamptz not null,
  max_ms bigint,
  total_micros bigint not null check (total_micros > 0),
  lines jsonb not null,
  created_at timestamptz not null,
  expires_at timestamptz not null,
  session_id uuid unique references sessions (id)
);
create index quotes_account on quotes (account_id, created_at desc);
