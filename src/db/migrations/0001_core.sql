-- Money columns are bigint micro-units of the currency (DESIGN rule 4).

create table accounts (
  id uuid primary key,
  name text not null,
  email text not null,
  email_normalized text not null unique,
  password_hash text not null,
  estimated_storage_gb numeric(12, 3) not null check (estimated_storage_gb >= 0),
  estimated_processing_hours numeric(12, 3) not null check (estimated_processing_hours >= 0),
  -- Card data never rests here: only what the card network's token stands for.
  card_token text not null,
  card_brand text not null,
  card_last4 char(4) not null,
  card_exp_month smallint not null,
  card_exp_year smallint not null,
  currency char(3) not null,
  outstanding_limit_micros bigint not null check (outstanding_limit_micros > 0),
  -- Sum of the holds of this account's open sessions (DESIGN rule 6).
  reserved_micros bigint not null default 0 check (reserved_micros >= 0),
  created_at timestamptz not null
);

create table api_tokens (
  token_hash bytea primary key,
  account_id uuid not null references accounts (id),
  created_at timestamptz not null
);
create index api_tokens_account on api_tokens (account_id);

create table servers (
  id uuid primary key,
  name text not null unique,
  max_users integer not null check (max_users >= 0),
  created_at timestamptz not null
);

create table services (
  id uuid primary key,
  name text not null unique,
  server_id uuid not null references servers (id),
  price_per_minute_micros bigint not null check (price_per_minute_micros > 0),
  currency char(3) not null,
  max_users integer not null check (max_users >= 0),
  upstream_url text,
  created_at timestamptz not null
);
create index services_server on services (server_id);

create table sessions (
  id uuid primary key,
  account_id uuid not null references accounts (id),
  service_id uuid not null references services (id),
  server_id uuid not null references servers (id),
  state text not null,
  machine_version integer not null,
  snapshot jsonb not null,
  currency char(3) not null,
  price_per_minute_micros bigint not null,
  max_ms bigint,
  max_charge_micros bigint not null,
  authorized_micros bigint,
  authorization_number text,
  started_at timestamptz,
  cutoff_at timestamptz,
  ended_at timestamptz,
  charge_micros bigint,
  end_reason text,
  created_at timestamptz not null,
  updated_at timestamptz not null
);
create index sessions_account on sessions (account_id, created_at desc);
create index sessions_unsettled on sessions (state) where state not in ('settled', 'declined');

create table session_events (
  id bigserial primary key,
  session_id uuid not null references sessions (id),
  event text not null,
  from_state text,
  to_state text not null,
  at timestamptz not null,
  detail jsonb
);
create index session_events_session on session_events (session_id, id);

-- Double entry per session: every row moves amount_micros from credit to debit.
-- entry_key makes each write idempotent (a transition persisted twice books once).
create table ledger_entries (
  id bigserial primary key,
  entry_key text not null unique,
  session_id uuid not null references sessions (id),
  kind text not null check (kind in ('hold', 'capture', 'release')),
  debit text not null,
  credit text not null,
  amount_micros bigint not null check (amount_micros >= 0),
  authorization_number text not null,
  at timestamptz not null
);
create index ledger_entries_session on ledger_entries (session_id);

create table charge_slips (
  id text primary key,
  session_id uuid not null unique references sessions (id),
  authorization_number text not null,
  amount_micros bigint not null check (amount_micros >= 0),
  currency char(3) not null,
  created_at timestamptz not null
);

-- Marketing log: the customer as they were when the session opened, never joined later.
create table session_log (
  session_id uuid primary key references sessions (id),
  account_id uuid not null,
  customer_name text not null,
  customer_email text not null,
  estimated_storage_gb numeric(12, 3) not null,
  estimated_processing_hours numeric(12, 3) not null,
  service_id uuid not null,
  service_name text not null,
  server_id uuid not null,
  server_name text not null,
  currency char(3) not null,
  opened_at timestamptz not null,
  started_at timestamptz,
  ended_at timestamptz,
  charge_micros bigint,
  end_reason text
);
create index session_log_opened on session_log (opened_at);
