-- Each session's own share of its account's reservation: the hold at opening, plus any
-- extension. The account's reserved_micros is the sum over its open sessions; a session
-- returns exactly its share when it ends, whatever happened in between.
alter table sessions add column reserved_micros bigint not null default 0 check (reserved_micros >= 0);
update sessions set reserved_micros = max_charge_micros where state not in ('settled', 'declined');
