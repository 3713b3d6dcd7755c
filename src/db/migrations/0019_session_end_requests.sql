-- A customer's logoff that no node could carry out because the session's server was between
-- owners (its owner down, its lease not yet lapsed): the node that runs the session next ends it
-- as of the instant it was asked, so the time nobody could stop the meter is not charged.
create table session_end_requests (
  session_id uuid primary key references sessions (id) on delete cascade,
  requested_at timestamptz not null
);
