-- Sessions whose capture the card company refused for good, per account (issue 14): an account is
-- suspended once enough of them have been refused since it was last resumed
-- (SUSPEND_AFTER_REFUSED_CAPTURES). One row per session, so an event seen twice counts once.
create table account_refused_captures (
  account_id uuid not null references accounts (id),
  session_id uuid not null,
  at timestamptz not null,
  primary key (account_id, session_id)
);
