-- The edge (issue 11): tollgate stands between the customer and the service's upstream.

-- What an upstream verifies tollgate's signed headers with (HMAC-SHA256). Shown to the operator
-- once, when the service is created or the secret rotated; kept here because the edge signs
-- with it on every request. Null: the service has no upstream yet.
alter table services add column signing_secret text;

-- The key access tokens are derived from (HMAC of the session id): one per deployment, in the
-- database so every node and every restart derives the same tokens. Written once, on first start.
create table edge_keys (
  id smallint primary key check (id = 1),
  key bytea not null check (length(key) = 32),
  created_at timestamptz not null
);

-- What each session did through the edge, added to in batches by the edge (never per request).
create table session_traffic (
  session_id uuid primary key references sessions (id),
  requests bigint not null default 0 check (requests >= 0),
  bytes_in bigint not null default 0 check (bytes_in >= 0),
  bytes_out bigint not null default 0 check (bytes_out >= 0),
  connections_cut integer not null default 0 check (connections_cut >= 0),
  updated_at timestamptz not null
);
