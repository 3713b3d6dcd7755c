import type { FastifyReply, FastifyRequest } from 'fastify';
import type { OccupancyStore } from '../admission/occupancy.js';
import type { EventBus } from '../events/event-bus.js';
import type { StoredEvent } from '../events/event-store.js';
import { jsonAttr } from './html.js';

/** What one live page listens to; every trigger recomputes its view and sends it when it changed. */
export interface LiveSource {
  /** The view the page shows, computed on the server (no rule of the house runs in the page). */
  view: () => Promise<unknown>;
  /** Domain events that change the view (DESIGN rule 14: the one seam). */
  events?: (event: StoredEvent) => boolean;
  /** Occupancy changes (seats, queues) change the view. */
  occupancy?: boolean;
  /**
   * Between events the charge accrues by the second: the server pushes the view this often
   * while the page is open (the page never polls, and computes no charge itself).
   */
  everyMs?: number;
  /** The tick stops once the view says nothing changes by itself any more (an ended session); events still come. */
  tickWhile?: (view: unknown) => boolean;
  /**
   * Whether whoever opened the stream may still read it (a page's log-in, checked when the stream
   * opened, can end while it runs: a log-out, a password change, a disabled operator). Asked
   * again before anything is sent, heartbeats included; the stream ends when it says no.
   */
  stillAllowed?: () => Promise<boolean>;
}

/** A comment line now and then keeps proxies from closing a quiet stream. */
const HEARTBEAT_MS = 15_000;
/** Occupancy can change many times a second under load: a page hears of it at most this often. */
const OCCUPANCY_THROTTLE_MS = 250;

/**
 * Server-sent event streams for the live pages. Each stream sends its view at once, then again
 * whenever a trigger fires and the view differs from the last one sent. Streams end when the
 * client goes away or the app closes (an open stream would otherwise hold the shutdown).
 */
export class LiveStreams {
  private readonly open = new Set<() => void>();

  constructor(private readonly deps: { bus: EventBus; occupancy: OccupancyStore; log: { warn: (obj: object, msg: string) => void } }) {}

  stream(request: FastifyRequest, reply: FastifyReply, source: LiveSource): void {
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
    });
    let last = '';
    let running: Promise<void> | null = null;
    let again = false;
    /** False (and the stream ended) once its reader may no longer read it. */
    const allowed = async (): Promise<boolean> => {
      if (!source.stillAllowed || (await source.stillAllowed())) return true;
      end();
      return false;
    };
    const send = (): void => {
      if (running) {
        again = true;
        return;
      }
      running = (async () => {
        try {
          if (!(await allowed())) return;
          const view = await source.view();
          if (source.tickWhile && !source.tickWhile(view)) stopTicking();
          const text = jsonAttr(view);
          if (text !== last && !raw.writableEnded) {
            last = text;
            raw.write(`data: ${text}\n\n`);
          }
        } catch (error) {
          this.deps.log.warn({ err: String(error), url: request.url }, 'a live view could not be computed');
        }
      })().finally(() => {
        running = null;
        if (again) {
          again = false;
          send();
        }
      });
    };
    const stops: (() => void)[] = [];
    let ticking: NodeJS.Timeout | null = null;
    const stopTicking = () => {
      if (ticking) clearInterval(ticking);
      ticking = null;
    };
    if (source.events) {
      const matches = source.events;
      stops.push(this.deps.bus.subscribe((events) => events.some(matches) && send()));
    }
    if (source.occupancy) {
      let timer: NodeJS.Timeout | null = null;
      const subscription = this.deps.occupancy.subscribe(() => {
        timer ??= setTimeout(() => {
          timer = null;
          send();
        }, OCCUPANCY_THROTTLE_MS);
      });
      stops.push(() => {
        subscription.unsubscribe();
        if (timer) clearTimeout(timer);
      });
    }
    if (source.everyMs) {
      ticking = setInterval(send, source.everyMs);
      stops.push(stopTicking);
    }
    // Only a definite no ends the stream: a check that failed (a database blip) is asked again at the next push.
    // The stream may have ended while the check ran (the client left): nothing is written after its end.
    const keepAlive = () => !raw.writableEnded && raw.write(': keep-alive\n\n');
    const heartbeat = setInterval(() => void allowed().then((yes) => yes && keepAlive(), keepAlive), HEARTBEAT_MS);
    stops.push(() => clearInterval(heartbeat));
    const end = () => {
      if (!this.open.delete(end)) return;
      for (const stop of stops) stop();
      if (!raw.writableEnded) raw.end();
    };
    this.open.add(end);
    raw.on('close', end);
    send();
  }

  /** At shutdown: every stream ends, so the server can close. */
  closeAll(): void {
    for (const end of [...this.open]) end();
  }
}
