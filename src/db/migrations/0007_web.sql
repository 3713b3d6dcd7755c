-- The operators' web console (issue 12): a log-in with name and password gives a console
-- session, its secret in an HttpOnly cookie and only its SHA-256 here, like the customers'
-- api_tokens. Revoked at log-out; lapses on its own.
create table operator_sessions (
  id uuid primary key,
  token_hash bytea not null unique,
  operator_id uuid not null references operators (id),
  created_at timestamptz not null,
  expires_at timestamptz not null,
  revoked_at timestamptz
);
create index operator_sessions_operator on operator_sessions (operator_id);
