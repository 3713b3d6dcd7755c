-- Refunds against a capture, as card networks make them (Stripe's refunds are the model): a capture
-- may be refunded in parts, never beyond what it captured. The capture's row lock makes two
-- refunds of one capture take turns, so their sum cannot pass it.
create table card_network.refunds (
  id text primary key,
  capture_id text not null references card_network.captures (id),
  amount_micros bigint not null check (amount_micros > 0),
  -- What the merchant attached (tollgate: its refund's id), to find a refund after a lost answer.
  reference text check (reference is null or length(reference) <= 200),
  created_at timestamptz not null
);
create index refunds_capture_idx on card_network.refunds (capture_id, created_at);
