import { seatsFreeOf, serviceOccupancy } from '../../admission/occupancy.js';
import { formatAmount } from '../../billing/money.js';
import type { WebDeps } from '../web-deps.js';

/** A service as the catalogue page shows it, live: what the seats and the queue are now. */
export interface CatalogueRow {
  id: string;
  name: string;
  serverName: string;
  pricePerMinute: string;
  currency: string;
  maxUsers: number;
  seatsFree: number;
  queued: number;
  /** How long the longest-waiting request has waited, in whole seconds, or null. */
  waitSeconds: number | null;
  /** False while the service's upstream takes no connections (opens are refused); null: not checked. */
  reachable: boolean | null;
}

export function catalogueRows(deps: Pick<WebDeps, 'catalogue' | 'occupancy' | 'clock' | 'reachable'>): CatalogueRow[] {
  const now = deps.clock.now();
  return deps.catalogue.services().map((s) => {
    const gate = serviceOccupancy(deps.occupancy, s.id);
    const active = gate?.activeUsers ?? 0;
    const oldest = gate?.oldestQueuedAt ?? null;
    return {
      id: s.id,
      name: s.name,
      serverName: s.serverName,
      pricePerMinute: formatAmount(s.pricePerMinuteMicros),
      currency: s.currency,
      maxUsers: s.maxUsers,
      seatsFree: seatsFreeOf(deps.occupancy, s.id) ?? Math.max(0, s.maxUsers - active),
      queued: gate?.queued ?? 0,
      waitSeconds: oldest === null ? null : Math.max(0, Math.round((now - oldest) / 1000)),
      reachable: deps.reachable(s.id),
    };
  });
}

/** What the catalogue's event stream sends: the live numbers only. */
export const catalogueLive = (rows: CatalogueRow[]) => ({
  services: rows.map(({ id, seatsFree, queued, waitSeconds, reachable }) => ({ id, seatsFree, queued, waitSeconds, status: statusText(reachable) })),
});

/** The catalogue's status cell: only a failed check says more than that the service is there. */
export const statusText = (reachable: boolean | null) => (reachable === false ? 'Not answering: opens are refused until it does' : 'Answering');
