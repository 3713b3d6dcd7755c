-- Usage reports' peak concurrent users, kept per quarter of an hour once no session can still
-- change that quarter (src/reports/usage-peaks.ts): the report reads these instead of sorting
-- every start and end of its window again. kind 0: per service, 1: per account. `peak` is the
-- most sessions running at once in the quarter (counting those running at its start), `level`
-- how many run at its end. Every quarter in which a key has a session running has a row (those
-- with no start or end of their own at the level the last one left).
create table usage_peaks (
  kind smallint not null,
  key uuid not null,
  quarter timestamptz not null,
  peak integer not null,
  level integer not null,
  primary key (kind, key, quarter)
);
-- Every quarter before `upto` is kept (one row, made by the first seal).
create table usage_peaks_sealed (
  id boolean primary key default true check (id),
  upto timestamptz not null
);
-- A seal reads the sessions that ended after its last one: those of the last minutes, not all.
create index sessions_ended on sessions (ended_at) where ended_at is not null;
