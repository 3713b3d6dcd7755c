-- Restore reads the unsettled sessions in batches by id (src/sessions/session-rows.ts): the
-- partial index over them is by id, so each batch starts where the last one ended. Queries that
-- only ask for unsettled rows use it as they used the index by state.
drop index sessions_unsettled;
create index sessions_unsettled on sessions (id) where state not in ('settled', 'declined');
