-- The credential a service presents to the metering API (issue 13): one per service, shown to
-- the operator once; only its SHA-256 is kept, so a look-up uses the index.
create table service_credentials (
  service_id uuid primary key references services (id),
  secret_hash bytea not null unique,
  created_at timestamptz not null,
  created_by uuid
);
