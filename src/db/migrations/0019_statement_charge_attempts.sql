-- A declined statement charge is tried again when the customer gives a new card: each try is an
-- attempt with keys of its own at the card company (attempt 0 keeps the keys statements always had),
-- on the card it was made for, kept with it: a try driven again after a lost answer goes to the same
-- card under the same keys (null: a statement made before this, charged to the account's card).
alter table statements
  add column charge_attempt integer not null default 0,
  add column charge_card_token text;
create index statements_charge_declined on statements (account_id) where charge_state = 'declined';
