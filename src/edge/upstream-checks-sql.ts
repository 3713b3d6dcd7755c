import type { Sql } from '../db/sql.js';

/** What a node last knew of a service's upstream (src/edge/upstream-health.ts), kept across its restarts. */
export interface RememberedCheck {
  url: string;
  reachableAt: number | null;
  failingSince: number | null;
  checkedAt: number;
}

/** The node's checks as its last run left them, by service. */
export async function loadChecks(sql: Sql, nodeId: string): Promise<Map<string, RememberedCheck>> {
  const rows = await sql<{ serviceId: string; url: string; reachableAt: Date | null; failingSince: Date | null; checkedAt: Date }[]>`
    select service_id as "serviceId", url, reachable_at as "reachableAt", failing_since as "failingSince", checked_at as "checkedAt"
    from upstream_checks where node_id = ${nodeId}`;
  return new Map(
    rows.map((r) => [
      r.serviceId,
      { url: r.url, reachableAt: r.reachableAt?.getTime() ?? null, failingSince: r.failingSince?.getTime() ?? null, checkedAt: r.checkedAt.getTime() },
    ]),
  );
}

/** One statement for a round's checks. */
export async function saveChecks(sql: Sql, nodeId: string, checks: [string, RememberedCheck][]): Promise<void> {
  if (checks.length === 0) return;
  const iso = (at: number | null) => (at === null ? null : new Date(at).toISOString());
  await sql`
    insert into upstream_checks (node_id, service_id, url, reachable_at, failing_since, checked_at)
    select ${nodeId}, * from unnest(
      ${checks.map(([serviceId]) => serviceId)}::uuid[], ${checks.map(([, c]) => c.url)}::text[],
      ${checks.map(([, c]) => iso(c.reachableAt))}::timestamptz[], ${checks.map(([, c]) => iso(c.failingSince))}::timestamptz[],
      ${checks.map(([, c]) => iso(c.checkedAt))}::timestamptz[])
    on conflict (node_id, service_id) do update set
      url = excluded.url, reachable_at = excluded.reachable_at, failing_since = excluded.failing_since, checked_at = excluded.checked_at`;
}
