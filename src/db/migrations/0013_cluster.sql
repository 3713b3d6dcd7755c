-- Several nodes on one PostgreSQL (issue 17; docs/cluster.md). PostgreSQL is the coordinator:
-- a node is alive while its heartbeat row has not expired, it owns the servers whose lease
-- names it, and every write of a session carries the epoch of the lease it was made under.

create table nodes (
  node_id text primary key check (length(node_id) between 1 and 100),
  -- Where the other nodes forward requests for this node's servers.
  url text not null,
  started_at timestamptz not null,
  heartbeat_at timestamptz not null,
  -- Every lease of the node lapses with its heartbeat: one row renewed per node, not one per server.
  expires_at timestamptz not null
);

-- The owner of each server. `epoch` grows at every change of owner and is the fencing token:
-- node_id null is a server handed back (a node leaving, or rebalancing), free to be claimed.
create table server_leases (
  server_id uuid primary key references servers (id),
  node_id text,
  epoch bigint not null check (epoch > 0),
  acquired_at timestamptz not null
);
create index server_leases_node on server_leases (node_id);

-- Every epoch ever granted, in the order of one sequence shared with the writes below: a write
-- accepted under an epoch after a newer one was granted for its server would be a stale write.
create sequence cluster_write_order;
create table lease_grants (
  server_id uuid not null,
  epoch bigint not null,
  node_id text not null,
  granted_order bigint not null default nextval('cluster_write_order'),
  granted_at timestamptz not null,
  primary key (server_id, epoch)
);

create function record_lease_grant() returns trigger language plpgsql as $$
begin
  if new.node_id is not null and (tg_op = 'INSERT' or new.epoch <> old.epoch) then
    insert into lease_grants (server_id, epoch, node_id, granted_at) values (new.server_id, new.epoch, new.node_id, new.acquired_at);
  end if;
  return null;
end $$;
create trigger server_leases_granted after insert or update on server_leases
  for each row execute function record_lease_grant();

-- The fencing token on the session's row. Null: a single node that holds no leases (the
-- default), whose writes are not fenced.
alter table sessions add column owner_epoch bigint;
-- Which epoch wrote each history line, and when in the grants' order (the fault suite's check).
alter table session_events add column owner_epoch bigint;
alter table session_events add column write_order bigint;

-- Writes PostgreSQL refused for a stale epoch. A sequence, because nextval is not undone by the
-- rollback of the refused transaction: PostgreSQL counts them itself, whatever the node says.
create sequence fencing_refusals;

-- A write carrying an epoch is accepted only under the server's current lease. The lease row is
-- locked in share mode until the write commits, so a change of owner waits for writes already
-- accepted, and the new owner reads the rows they left.
create function fence_session_write() returns trigger language plpgsql as $$
declare
  current_epoch bigint;
begin
  if new.owner_epoch is null then
    return new;
  end if;
  select epoch into current_epoch from server_leases where server_id = new.server_id and node_id is not null for share;
  if current_epoch is null or new.owner_epoch <> current_epoch then
    perform nextval('fencing_refusals');
    raise exception 'stale epoch % for server % (current %)', new.owner_epoch, new.server_id, coalesce(current_epoch::text, 'none')
      using errcode = 'TG409';
  end if;
  return new;
end $$;
create trigger sessions_fenced before insert or update on sessions
  for each row execute function fence_session_write();

-- A history line written under an epoch takes its place in the order of grants.
create function order_session_event() returns trigger language plpgsql as $$
begin
  if new.owner_epoch is not null then
    new.write_order := nextval('cluster_write_order');
  end if;
  return new;
end $$;
create trigger session_events_ordered before insert on session_events
  for each row execute function order_session_event();

-- Nodes learn of domain events committed by the others (LISTEN tollgate_events): one
-- notification per transaction (PostgreSQL folds identical ones), sent at commit. Only a node's
-- connections (which set tollgate.node as they connect) notify: a node alone pays nothing, and
-- NOTIFY takes a lock at commit that serializes the commits that notify.
create function notify_domain_events() returns trigger language plpgsql as $$
begin
  perform pg_notify('tollgate_events', '');
  return null;
end $$;
create trigger domain_events_notify after insert on domain_events
  for each row when (current_setting('tollgate.node', true) is not null)
  execute function notify_domain_events();

-- A node taking a server reads that server's unsettled sessions.
create index sessions_unsettled_server on sessions (server_id) where state not in ('settled', 'declined');
