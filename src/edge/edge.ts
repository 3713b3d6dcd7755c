import type { IncomingMessage } from 'node:http';
import type { Upstream } from '../catalogue/catalogue-service.js';
import type { NodeAddress } from '../cluster/ownership.js';
import type { Clock } from '../clock.js';
import type { Sql } from '../db/sql.js';
import { AppError, errors } from '../errors.js';
import type { AccessTokens } from './access-token.js';
import { credentialOf, queryWithoutAccess, type Credential } from './credentials.js';
import type { Ended, LiveSession, LiveSessions } from './live-sessions.js';
import { NO_TRAFFIC, type TrafficCounts } from './traffic.js';
import { SIGNED_HEADERS, signUpstream } from './upstream-signature.js';

/** The path every session's access URL starts with. */
export const EDGE_PREFIX = '/edge/';

const EDGE_PATH = /^\/edge\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(\/[^?#]*)?(?:\?([^#]*))?$/;

/**
 * A request's unit, for a service priced per request: `settle` once, true when the service
 * answered; it resolves true when the session took it (a commit refused means it was not charged).
 */
export interface Charge {
  paid: boolean;
  settle(used: boolean): Promise<boolean>;
}

const NOT_CHARGED: Charge = { paid: false, settle: () => Promise.resolve(true) };

/**
 * Ends a paid request still waiting for its service may outlast: the limits, whose session waits
 * for its last uses (over_limit.awaiting_uses). A logoff, an operator's terminate, an abandoned
 * open close the session at once, and what is in flight is cut and given back.
 */
export const WAITS_FOR_PAID = new Set(['charge_limit', 'time_limit']);

/** A request let through: for which session, to where, with what credential. */
export interface Pass {
  session: LiveSession;
  upstream: Upstream;
  /** Where the request goes: the upstream's origin, its base path with the customer's path, and the query without the token (no "?"). */
  origin: string;
  path: string;
  query: string;
  credential: Credential;
  /** The session's path under the edge (where its cookie is scoped). */
  sessionPath: string;
}

interface SessionFacts {
  accountId: string;
  serviceId: string;
  state: string;
  endReason: string | null;
  endedAt: Date | null;
}

/**
 * Who may pass and where to: the one check every request and WebSocket upgrade goes through.
 * It asks only the edge's own table (DESIGN rule 15); the database only when a token names a
 * session the table does not hold (ended long ago), to say why it may not pass.
 */
export class Edge {
  /** Sessions whose pricing is being asked (pricedByTime). */
  private readonly pricing = new Map<string, Promise<boolean>>();

  constructor(
    private readonly deps: {
      live: LiveSessions;
      tokens: AccessTokens;
      catalogue: { upstream(serviceId: string): Upstream | undefined };
      sql: Sql;
      clock: Clock;
      /**
       * Reserves one request's unit of a session whose service is priced per request (its
       * reservation id; false: not priced so; 'elsewhere': priced so, but another node runs the
       * session and must charge it).
       */
      meter?: (sessionId: string, options: { stream: boolean }) => Promise<string | false | 'elsewhere'>;
      /** Whether the session's service charges each request (nothing reserved: its tariff is read). */
      chargesPerRequest?: (sessionId: string) => Promise<boolean>;
      /** The reserved unit is charged (the service answered) or given back (it never did); true when the session took it. */
      settle?: (sessionId: string, reservationId: string, used: boolean) => Promise<boolean>;
      /** Several nodes: the node that runs a service's server, where a request this node may not charge goes. */
      ownerOf?: (serviceId: string) => NodeAddress | null;
      /** This node's id, which a request it forwards carries (`x-tollgate-forwarded-by`). */
      nodeId?: string;
    },
  ) {}

  get nodeId(): string {
    return this.deps.nodeId ?? 'single';
  }

  /** The node a request must go to when `charge` says 'owner'; null when none is known (the server is moving). */
  ownerOf(pass: Pass): NodeAddress | null {
    return this.deps.ownerOf?.(pass.session.serviceId) ?? null;
  }

  /**
   * Whether the session is priced by time alone (its requests are not charged one by one): asked
   * once per session, then remembered; true or false at once once known, else a promise.
   */
  pricedByTime(pass: Pass): boolean | Promise<boolean> {
    const { session } = pass;
    if (!this.deps.meter) return true;
    if (session.perRequest !== undefined) return !session.perRequest;
    // Not known here: the route that charges finds out.
    if (!this.deps.chargesPerRequest) return false;
    // A session's first requests, at once, ask once.
    let asked = this.pricing.get(session.sessionId);
    if (!asked) {
      asked = this.deps.chargesPerRequest(session.sessionId).then(
        (perRequest) => {
          this.pricing.delete(session.sessionId);
          session.perRequest = perRequest;
          return !perRequest;
        },
        (error: unknown) => {
          this.pricing.delete(session.sessionId);
          throw error;
        },
      );
      this.pricing.set(session.sessionId, asked);
    }
    return asked;
  }

  /**
   * A request (or a WebSocket) to a service priced per request has its unit reserved before it
   * passes, and is refused with 402 USE_LIMIT_REACHED when it would pass the session's limit. The
   * charge is what `Charge.settle` says: charged once the service answered, given back when it
   * never did. 'owner': the session is priced per request and another node runs it: the request
   * goes there to be charged.
   */
  async charge(pass: Pass, options: { stream: boolean } = { stream: false }): Promise<Charge | 'owner'> {
    // Asked once per session: the edge's own table answers for the rest (DESIGN rule 15).
    if (!this.deps.meter || pass.session.perRequest === false) return NOT_CHARGED;
    const reserved = await this.deps.meter(pass.session.sessionId, options);
    // Charged by the node that runs the session, asked again at every request (the owner may change).
    if (reserved === 'elsewhere') return 'owner';
    pass.session.perRequest = reserved !== false;
    if (reserved === false) return NOT_CHARGED;
    const { sessionId } = pass.session;
    let settled = false;
    return {
      paid: true,
      settle: (used) => {
        if (settled) return Promise.resolve(false);
        settled = true;
        // Never rejects: an answer waiting on it must not be left hanging (nor the process crash).
        return (this.deps.settle?.(sessionId, reserved, used) ?? Promise.resolve(false)).catch(() => false);
      },
    };
  }

  tokenFor(sessionId: string): string {
    return this.deps.tokens.tokenFor(sessionId);
  }

  /**
   * Whether a session the view says is active may pass: the edge cuts at the cutoff instant
   * itself, a moment before the session's own transition is committed, and the view should not
   * offer access the edge already refuses.
   */
  lets(sessionId: string, cutoffAt: number): boolean {
    return cutoffAt > this.deps.clock.now() && !this.deps.live.get(sessionId)?.ended;
  }

  /** What sessions did through the edge: this process's counts for those it holds, the stored ones for the rest. */
  async trafficOf(sessionIds: readonly string[]): Promise<Map<string, TrafficCounts>> {
    const counts = new Map<string, TrafficCounts>();
    const stored: string[] = [];
    for (const id of sessionIds) {
      const live = this.deps.live.get(id);
      if (live) counts.set(id, { ...live.traffic.total });
      else stored.push(id);
    }
    if (stored.length > 0) {
      const rows = await this.deps.sql<{ sessionId: string; requests: string; bytesIn: string; bytesOut: string; connectionsCut: number }[]>`
        select session_id as "sessionId", requests::text, bytes_in::text as "bytesIn", bytes_out::text as "bytesOut", connections_cut as "connectionsCut"
        from session_traffic where session_id = any(${stored}::uuid[])`;
      for (const row of rows) {
        counts.set(row.sessionId, { requests: Number(row.requests), bytesIn: Number(row.bytesIn), bytesOut: Number(row.bytesOut), connectionsCut: row.connectionsCut });
      }
    }
    for (const id of sessionIds) if (!counts.has(id)) counts.set(id, { ...NO_TRAFFIC });
    return counts;
  }

  /** Lets the request through or throws the answer: 400, 401, 403, 402, 503 (problem+json). */
  async admit(request: IncomingMessage): Promise<Pass> {
    return this.admitNow(request);
  }

  /**
   * admit, answered at once (no promise) in the common case: a session this table holds, asked
   * with the token its view shows. A refusal known at once is thrown; the rest is a promise.
   */
  admitNow(request: IncomingMessage): Pass | Promise<Pass> {
    const match = EDGE_PATH.exec(request.url ?? '');
    if (!match) throw errors.validation('The path must be /edge/<sessionId>/<path on the service>.');
    const sessionId = match[1]!;
    const rest = match[2] ?? '/';
    const search = match[3] ?? '';
    // Refused as Fastify's router refuses it (WebSocket upgrades never meet that router): a path
    // that does not decode would hide its dot segments from the check below.
    const decoded = safeDecode(rest);
    if (decoded === null) throw errors.badUrl();
    // A backslash counts as a slash: WHATWG URL parsers (and so many services) read it as one.
    if (DOT_SEGMENT.test(decoded)) throw errors.validation('The path must not contain . or .. segments.');
    const credential = credentialOf(request, search);
    if (!credential) throw errors.accessTokenInvalid();
    const session = this.deps.live.get(sessionId);
    // The common case costs a string comparison: the token this session's view shows.
    if (session?.token && sameText(credential.token, session.token)) {
      if (session.ended) throw endedError(session.ended);
      return this.passOf(session, rest, search, credential);
    }
    return this.admitByToken(sessionId, session, rest, search, credential);
  }

  private async admitByToken(sessionId: string, known: LiveSession | undefined, rest: string, search: string, credential: Credential): Promise<Pass> {
    const tokenSession = this.deps.tokens.sessionOf(credential.token);
    if (!tokenSession) throw errors.accessTokenInvalid();
    if (tokenSession !== sessionId) throw errors.accessForbidden(await this.mismatch(tokenSession, sessionId));
    // Not heard of here yet (opened by another node a moment ago): its row says whether it is active.
    const session = known ?? (await this.deps.live.adopt(this.deps.sql, sessionId));
    if (session) session.token = credential.token;
    if (!session || session.ended) throw await this.notActive(sessionId, session);
    return this.passOf(session, rest, search, credential);
  }

  private passOf(session: LiveSession, rest: string, search: string, credential: Credential): Pass {
    const upstream = this.deps.catalogue.upstream(session.serviceId);
    if (!upstream) throw errors.noUpstream();
    return {
      session,
      upstream,
      origin: upstream.origin,
      path: upstream.basePath + rest,
      query: queryWithoutAccess(search),
      credential,
      sessionPath: EDGE_PREFIX + session.sessionId,
    };
  }

  /**
   * The headers an upstream verifies: who, for which session, until when, signed with the
   * service's secret. The signature is made again only when one of its inputs changed (its
   * timestamp has whole seconds): a session's requests to the same path within a second share one.
   */
  signedHeaders(pass: Pass, method: string): Readonly<Record<string, string>> {
    const { session, upstream } = pass;
    const path = pass.query ? `${pass.path}?${pass.query}` : pass.path;
    const now = this.deps.clock.now();
    const t = Math.floor(now / 1000);
    const last = session.signed;
    if (last && last.t === t && last.cutoffAt === session.cutoffAt && last.method === method && last.path === path && last.secret === upstream.signingSecret) {
      return last.headers;
    }
    const cutoffAt = new Date(session.cutoffAt).toISOString();
    const facts = { sessionId: session.sessionId, accountId: session.accountId, cutoffAt, method, path };
    const headers = {
      [SIGNED_HEADERS.sessionId]: facts.sessionId,
      [SIGNED_HEADERS.accountId]: facts.accountId,
      [SIGNED_HEADERS.cutoffAt]: cutoffAt,
      [SIGNED_HEADERS.signature]: signUpstream(upstream.signingSecret, facts, now),
    };
    session.signed = { t, cutoffAt: session.cutoffAt, method, path, secret: upstream.signingSecret, headers };
    return headers;
  }

  private async mismatch(tokenSession: string, urlSession: string): Promise<'other_service' | 'other_customer' | 'other_session'> {
    const [holder, target] = await Promise.all([this.factsOf(tokenSession), this.factsOf(urlSession)]);
    if (!holder || !target) return 'other_session';
    if (holder.accountId !== target.accountId) return 'other_customer';
    if (holder.serviceId !== target.serviceId) return 'other_service';
    return 'other_session';
  }

  private async notActive(sessionId: string, session: LiveSession | undefined): Promise<AppError> {
    if (session?.ended) return endedError(session.ended);
    const row = await this.factsOf(sessionId);
    if (!row) return errors.accessTokenInvalid();
    return errors.sessionEnded(row.state, row.endReason, row.endedAt?.toISOString() ?? null);
  }

  private async factsOf(sessionId: string): Promise<SessionFacts | null> {
    const live = this.deps.live.get(sessionId);
    if (live) return { accountId: live.accountId, serviceId: live.serviceId, state: 'active', endReason: null, endedAt: null };
    const [row] = await this.deps.sql<SessionFacts[]>`
      select account_id as "accountId", service_id as "serviceId", state, end_reason as "endReason", ended_at as "endedAt"
      from sessions where id = ${sessionId}`;
    return row ?? null;
  }
}

/** A dot segment, with a backslash counted as a slash. */
const DOT_SEGMENT = /(^|[/\\])\.\.?([/\\]|$)/;

const endedError = (ended: Ended) => errors.sessionEnded('ended', ended.reason, new Date(ended.at).toISOString());

/**
 * Whether a token is the session's, in time that does not depend on where they differ (as
 * timingSafeEqual, without two buffers per request). A token's length is no secret: every token has one.
 */
function sameText(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return difference === 0;
}

function safeDecode(path: string): string | null {
  if (!path.includes('%')) return path;
  try {
    return decodeURIComponent(path);
  } catch {
    return null;
  }
}
