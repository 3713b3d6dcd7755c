-- Issue 15: tokens that lapse and can be revoked, log-in throttling, per-account session
-- quotas, named operators with roles, and an append-only audit log of what they do.

-- Customer tokens get an id to be named by (never the secret), a sliding expiry and a revocation.
alter table api_tokens
  add column id uuid,
  add column last_used_at timestamptz,
  add column expires_at timestamptz,
  add column revoked_at timestamptz;
-- Tokens issued before expiry existed lapse a week after this migration unless used.
update api_tokens set id = gen_random_uuid(), last_used_at = created_at, expires_at = now() + interval '7 days';
alter table api_tokens
  alter column id set not null,
  alter column last_used_at set not null,
  alter column expires_at set not null,
  add constraint api_tokens_id unique (id);

-- Wrong passwords in a row per e-mail, known or not (so a lock says nothing about who has an account).
create table login_failures (
  email_normalized text primary key,
  failures integer not null check (failures > 0),
  last_failed_at timestamptz not null,
  locked_until timestamptz
);

-- Unsettled sessions per account, kept by the same statements that open and end them, under the
-- account's row lock: a count taken apart from the insert would oversubscribe the quota.
alter table accounts add column open_sessions integer not null default 0 check (open_sessions >= 0);
update accounts a set open_sessions = (
  select count(*) from sessions s where s.account_id = a.id and s.state not in ('settled', 'declined'));

create table operators (
  id uuid primary key,
  name text not null unique,
  role text not null check (role in ('admin', 'support', 'read_only')),
  -- argon2id, for the web console's log-in (issue 12); an operator may have only an API key.
  password_hash text,
  -- SHA-256 of the API key (256 random bits: no slow hash needed).
  api_key_hash bytea unique,
  created_at timestamptz not null,
  created_by uuid references operators (id),
  disabled_at timestamptz
);

-- Who did what to what, when, with the state before and after. The application only inserts;
-- the triggers refuse every change and deletion, whoever asks.
create table audit_log (
  id bigint generated always as identity primary key,
  at timestamptz not null,
  -- Null for the bootstrap token (which can only create the first admin).
  operator_id uuid references operators (id),
  operator_name text not null,
  action text not null,
  target_type text not null,
  target_id text,
  before jsonb,
  after jsonb,
  request_id text
);
create index audit_log_target on audit_log (target_type, target_id, id);
create index audit_log_operator on audit_log (operator_id, id);

create function audit_log_refuse_change() returns trigger language plpgsql as $$
begin
  raise exception 'audit_log is append-only: % refused', tg_op using errcode = 'insufficient_privilege';
end
$$;
create trigger audit_log_append_only before update or delete on audit_log
  for each row execute function audit_log_refuse_change();
create trigger audit_log_no_truncate before truncate on audit_log
  for each statement execute function audit_log_refuse_change();
