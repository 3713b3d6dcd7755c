-- Issue 14: a closed account's unused prepaid balance goes back to the card. The close writes the
-- intent in its own transaction (the balance leaves the account as these rows), spread over the
-- account's top-up captures newest first, each row never above what its capture has left; the
-- card calls follow, keyed by the row's id (DESIGN rule 3), and are driven again until answered.
create table balance_refunds (
  id uuid primary key,
  account_id uuid not null references accounts (id),
  top_up_id uuid not null references top_ups (id),
  -- The top-up's capture at the card company (top_ups.charge_id), which the refund goes against.
  capture_id text not null,
  amount_micros bigint not null check (amount_micros > 0),
  currency char(3) not null,
  -- pending: not yet answered (no answer, or not yet asked); refunded; refused: the card company
  -- said no for good (left to an operator: the money is still the customer's).
  state text not null check (state in ('pending', 'refunded', 'refused')),
  refund_id text,
  attempts integer not null default 0,
  last_error text,
  -- When the balance left the account (the close): the statement's date for the line.
  created_at timestamptz not null,
  settled_at timestamptz
);
create index balance_refunds_account on balance_refunds (account_id, created_at);
create index balance_refunds_top_up on balance_refunds (top_up_id);
create index balance_refunds_pending on balance_refunds (created_at) where state = 'pending';
-- The housekeeping looks for closed accounts that a late top-up credited; there are normally none.
create index accounts_closed_with_balance on accounts (id) where closed_at is not null and balance_micros > 0;

-- A statement's refunds to the card: its balance moves add up as top-ups minus what sessions took
-- from the balance minus refunds.
alter table statements add column refunds_micros bigint not null default 0;
