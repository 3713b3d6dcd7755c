-- Tariffs (issue 13): a service's default price per minute stays in price_per_minute_micros;
-- `pricing` holds the rest (time zone, rules by weekday and hour, billing increments and
-- minimum, the price per use). Null: one price all day, per second, no price per use.
alter table services add column pricing jsonb;
