-- What each node last knew of each service's upstream, so that a restart goes on from it: an outage
-- that began before the restart is charged from the last check that connected (not from the first
-- check after the restart), and a crash loop does not start the lost-after clock again each time.
create table upstream_checks (
  node_id text not null,
  service_id uuid not null references services (id) on delete cascade,
  url text not null,
  reachable_at timestamptz,
  failing_since timestamptz,
  checked_at timestamptz not null,
  primary key (node_id, service_id)
);
