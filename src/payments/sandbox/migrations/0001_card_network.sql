-- The card-network sandbox keeps its own schema: it stands for another company's system
-- and shares nothing with tollgate's tables.
create schema if not exists card_network;

-- The per-install secret behind card fingerprints and request hashes, so neither can be
-- reversed by hashing every card number a brand can have.
create table card_network.install (
  singleton boolean primary key default true check (singleton),
  salt text not null
);
insert into card_network.install (salt)
values (encode(sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text, 'UTF8')), 'hex'));

-- Never the card number, never the CVC.
create table card_network.cards (
  token text primary key,
  fingerprint text not null,
  brand text not null,
  last4 text not null check (last4 ~ '^[0-9]{4}$'),
  exp_month integer not null check (exp_month between 1 and 12),
  exp_year integer not null,
  behavior text not null,
  created_at timestamptz not null
);

create table card_network.holds (
  id text primary key,
  authorization_number text not null unique,
  token text not null references card_network.cards (token),
  currency text not null check (currency ~ '^[A-Z]{3}$'),
  amount_micros bigint not null check (amount_micros > 0),
  captured_micros bigint not null default 0 check (captured_micros >= 0 and captured_micros <= amount_micros),
  state text not null check (state in ('open', 'captured', 'voided', 'expired')),
  -- Fault injection for the "capture fails twice" test card: answers given so far.
  failed_capture_attempts integer not null default 0,
  expires_at timestamptz not null,
  created_at timestamptz not null,
  updated_at timestamptz not null
);
create index holds_token_idx on card_network.holds (token);

-- One charge slip per hold: the unique hold_id backs up the row lock taken at capture.
create table card_network.captures (
  id text primary key,
  hold_id text not null unique references card_network.holds (id),
  authorization_number text not null,
  amount_micros bigint not null check (amount_micros >= 0),
  created_at timestamptz not null
);

create table card_network.idempotency_keys (
  key text primary key,
  request_hash text not null,
  status integer not null,
  body jsonb not null,
  created_at timestamptz not null
);
