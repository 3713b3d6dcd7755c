import net from 'node:net';
import type { Upstream } from '../catalogue/catalogue-service.js';
import type { Logger } from '../logger.js';
import type { RememberedCheck } from './upstream-checks-sql.js';

/** What the last check of a service's upstream found. */
export interface UpstreamState {
  /** The upstream it was checked at: a service pointed elsewhere since is not known yet. */
  url: string;
  reachable: boolean;
  /** Why not, when it is not (ECONNREFUSED, a timeout). */
  detail: string | null;
  checkedAt: number;
  /** When the last check that connected began (null: none known, or the URL changed). */
  reachableAt: number | null;
  /** When the checks began to fail, while they do. */
  failingSince: number | null;
}

/**
 * Whether each service's upstream takes connections, checked every `intervalMs` by opening a TCP
 * connection to it (any HTTP service takes one; nothing is sent). Opens of a service found
 * unreachable are refused, so nobody is charged by the minute for a service nobody can reach. A
 * service not checked yet counts as reachable: a check is a guard, not a gate a new service waits at.
 * One whose checks have failed for `lostAfterMs` is lost: `onLost` ends its running sessions, charged
 * up to the last check that connected (a blip shorter than that ends nothing; 0: never lost). What
 * each round found is kept (`store`), so a restart goes on from it: an outage that began before the
 * restart counts from then, and is charged from the last check that connected before it.
 */
export class UpstreamHealth {
  private readonly states = new Map<string, UpstreamState>();
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly deps: {
      upstreams: () => Iterable<[string, Upstream]>;
      upstreamOf: (serviceId: string) => Upstream | undefined;
      now: () => number;
      log: Logger;
      intervalMs: number;
      timeoutMs: number;
      lostAfterMs: number;
      /** `since`: the last instant the upstream was known to take connections. Called each round while it is lost. */
      onLost: (serviceId: string, since: number) => Promise<void>;
      store?: {
        load: () => Promise<Map<string, RememberedCheck>>;
        save: (checks: [string, RememberedCheck][]) => Promise<void>;
      };
    },
  ) {}

  /** What the last run knew, until this run's first check of each service takes it over. */
  private remembered = new Map<string, RememberedCheck>();

  /** onLost calls in flight, by service: one at a time each, awaited by stop. */
  private readonly ending = new Map<string, Promise<void>>();

  /** The first round is awaited (a service down at start-up is known before the first open); 0: never checked. */
  async start(): Promise<void> {
    if (this.deps.intervalMs <= 0) return;
    if (this.deps.store) {
      this.remembered = await this.deps.store.load().catch((error: unknown) => {
        this.deps.log.warn({ err: String(error) }, 'could not read what the last run knew of the upstreams; checking afresh');
        return new Map<string, RememberedCheck>();
      });
    }
    await this.checkAll();
    this.timer = setInterval(() => void this.checkAll(), this.deps.intervalMs).unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
    await Promise.all(this.ending.values());
  }

  /**
   * Null while unknown (never checked, no upstream, or pointed elsewhere since its check, which
   * starts a round at once): not a reason to refuse.
   */
  stateOf(serviceId: string): UpstreamState | null {
    const state = this.states.get(serviceId);
    if (!state) return null;
    if (state.url !== this.deps.upstreamOf(serviceId)?.url.href) {
      if (this.deps.intervalMs > 0) void this.checkAll();
      return null;
    }
    return state;
  }

  /** One round over every upstream, at most one at a time. */
  checkAll(): Promise<void> {
    this.running ??= this.round().finally(() => (this.running = null));
    return this.running;
  }

  private async round(): Promise<void> {
    const upstreams = [...this.deps.upstreams()];
    const current = new Set(upstreams.map(([serviceId]) => serviceId));
    for (const serviceId of this.states.keys()) if (!current.has(serviceId)) this.states.delete(serviceId);
    await Promise.all(
      upstreams.map(async ([serviceId, upstream]) => {
        const began = this.deps.now();
        const detail = await this.connect(upstream.url);
        const checkedAt = this.deps.now();
        const previous = this.states.get(serviceId) ?? this.remembered.get(serviceId);
        this.remembered.delete(serviceId);
        // A failure streak goes on only with the same upstream, and only across a gap shorter than
        // the lost-after time (a restart): after a longer one nobody knows what happened between.
        const sameStreak = previous?.url === upstream.url.href && began - previous.checkedAt < Math.max(this.deps.lostAfterMs, this.deps.intervalMs * 2);
        const reachable = detail === null;
        // Pointed elsewhere since a check that connected: the old upstream served its sessions until
        // this first check of the new one, as far as anyone knows (an outside probe's session, moved
        // to a dead upstream two seconds in, was charged nothing for the minute the old one served).
        // Only just before: after a longer gap (a restart) nobody knows when the old one stopped serving.
        const movedFromReachable =
          previous !== undefined &&
          previous.url !== upstream.url.href &&
          previous.failingSince === null &&
          previous.reachableAt !== null &&
          began - previous.checkedAt < Math.max(this.deps.lostAfterMs, this.deps.intervalMs * 2);
        const state: UpstreamState = {
          url: upstream.url.href,
          reachable,
          detail,
          checkedAt,
          // Reachable when the check began, at the latest: a charge never runs past what a check saw.
          // The last moment the service was reached holds whatever upstream it had then.
          reachableAt: reachable || movedFromReachable ? began : (previous?.reachableAt ?? null),
          failingSince: reachable ? null : ((sameStreak ? previous?.failingSince : null) ?? began),
        };
        this.states.set(serviceId, state);
        const wasReachable = (previous?.failingSince ?? null) === null;
        if (wasReachable !== reachable) {
          if (reachable) this.deps.log.info({ serviceId, upstream: upstream.url.origin }, 'a service’s upstream is reachable again');
          else this.deps.log.warn({ serviceId, upstream: upstream.url.origin, detail }, 'a service’s upstream is unreachable: its opens are refused');
        }
        if (this.deps.lostAfterMs > 0 && state.failingSince !== null && checkedAt - state.failingSince >= this.deps.lostAfterMs) {
          this.lost(serviceId, state.reachableAt ?? state.failingSince);
        }
      }),
    );
    const checks = [...this.states].map(([serviceId, { url, reachableAt, failingSince, checkedAt }]): [string, RememberedCheck] => [
      serviceId,
      { url, reachableAt, failingSince, checkedAt },
    ]);
    await this.deps.store?.save(checks).catch((error: unknown) => this.deps.log.warn({ err: String(error) }, 'could not keep what the upstream checks found'));
  }

  private lost(serviceId: string, since: number): void {
    if (this.ending.has(serviceId)) return;
    const ending = Promise.resolve()
      .then(() => this.deps.onLost(serviceId, since))
      .catch((error: unknown) => this.deps.log.warn({ serviceId, err: String(error) }, 'could not end the sessions of a service whose upstream is lost'))
      .finally(() => this.ending.delete(serviceId));
    this.ending.set(serviceId, ending);
  }

  /** Null when a TCP connection was made, else why not. */
  private connect(url: URL): Promise<string | null> {
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    const host = url.hostname.replace(/^\[|\]$/g, '');
    return new Promise((resolve) => {
      const socket = net.connect({ host, port });
      const done = (detail: string | null) => {
        socket.destroy();
        resolve(detail);
      };
      socket.setTimeout(this.deps.timeoutMs, () => done(`no connection within ${this.deps.timeoutMs} ms`));
      socket.once('connect', () => done(null));
      socket.once('error', (error: NodeJS.ErrnoException) => done(error.code ?? error.message));
    });
  }
}
