-- A declined statement charge is tried again when the customer gives a new card: each try is an
-- attempt with keys of its own at the card company (attempt 0 keeps the keys statements always had).
alter table statements add column charge_attempt integer not null default 0;
create index statements_charge_declined on statements (account_id) where charge_state = 'declined';
