import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import swagger from '@fastify/swagger';
import type { IncomingMessage, ServerResponse } from 'node:http';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest, type FastifySchema } from 'fastify';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { Logger } from './logger.js';
import type { RouteDeps } from './http/deps.js';
import { customerApi } from './http/plugins/customer-api.js';
import { operatorApi } from './http/plugins/operator-api.js';
import { publicApi } from './http/plugins/public-api.js';
import { clientError, frameworkError, registerProblemHandlers } from './http/problem.js';
import { refuseUnstorableText } from './http/unstorable-text.js';
import { registerRateLimiting } from './http/rate-limits.js';
import type { EventBus } from './events/event-bus.js';
import type { ConsoleSessionDeps } from './operators/console-sessions.js';
import { LiveStreams } from './web/live-streams.js';
import { sendErrorPage } from './web/error-page.js';
import { webSite } from './web/site.js';
import { meteringApi } from './http/plugins/metering-api.js';
import { edgeHttp } from './edge/edge-http.js';
import { EdgeFront } from './edge/edge-front.js';
import { clientAddressOf, trustHops } from './edge/client-address.js';
import { Forwarder, type ForwardingDeps } from './cluster/forwarding.js';

/** How long requests and connections may take (README "Configuration"; docs/security.md). */
export interface HttpOptions {
  requestTimeoutMs: number;
  connectionTimeoutMs: number;
  handlerTimeoutMs: number;
  keepAliveTimeoutMs: number;
  bodyLimitBytes: number;
  trustProxy: boolean | number | string[];
  corsOrigins: string[];
}

/**
 * The content security policy of every answer, fitted to the pages to come (issue 12):
 * server-rendered HTML with scripts and styles served from tollgate itself (every asset ships in
 * the package: DESIGN rule 17), no inline script, no CDN, never framed. JSON answers carry it too:
 * a browser that renders one as HTML runs nothing.
 */
const CONTENT_SECURITY_POLICY = {
  useDefaults: false,
  directives: {
    defaultSrc: ["'self'"],
    scriptSrc: ["'self'"],
    styleSrc: ["'self'"],
    imgSrc: ["'self'", 'data:'],
    fontSrc: ["'self'"],
    connectSrc: ["'self'"],
    objectSrc: ["'none'"],
    baseUri: ["'self'"],
    formAction: ["'self'"],
    frameAncestors: ["'none'"],
  },
};

/** A route as registered, with its schemas (zod): what the API offers, read by the fuzz test. */
export interface RouteEntry {
  method: string;
  url: string;
  schema: FastifySchema | undefined;
}

declare module 'fastify' {
  interface FastifyInstance {
    routeTable: RouteEntry[];
  }
  interface FastifyContextConfig {
    /** Streams (the edge's SSE and WebSockets): the socket's inactivity timeout does not apply. */
    longLived?: boolean;
    /**
     * The route bounds its requests itself (the edge: the session's cut, the upstream pool's
     * headers timeout), so HTTP_HANDLER_TIMEOUT_MS does not apply: Fastify's handler timeout
     * costs an AbortController, a timer and listeners on every request.
     */
    ownTimeouts?: boolean;
    /** The route carries what it is sent on to a service (the edge): its text is not checked for storing. */
    passesThrough?: boolean;
  }
}

async function noSocketTimeout(request: FastifyRequest): Promise<void> {
  // app.inject()'s socket (light-my-request) has no timeout to switch off.
  if (typeof request.raw.socket.setTimeout === 'function') request.raw.socket.setTimeout(0);
}

/** Builds the HTTP app around running dependencies; it does not listen, so tests inject into it. */
export async function buildApp(
  deps: RouteDeps & { logger: Logger | false; http: HttpOptions; events: EventBus; console: ConsoleSessionDeps; cluster?: ForwardingDeps | null },
): Promise<FastifyInstance> {
  const { http } = deps;
  // The edge's common case (a session priced by time) is forwarded in front of Fastify; the rest goes on to it.
  const front = new EdgeFront({
    edge: deps.edge,
    clientAddress: clientAddressOf(http.trustProxy),
    log: deps.logger || null,
    methods: (): readonly string[] => app.supportedMethods,
  });
  const options = {
    // Receiving a whole request (headers and body): a slow-loris client is cut off.
    requestTimeout: http.requestTimeoutMs,
    // A connection silent this long either way is closed; longer than the longest open's wait.
    connectionTimeout: http.connectionTimeoutMs,
    // Answering: a handler that hangs is answered 503 HANDLER_TIMEOUT; set per route below (the onRoute
    // hook), so a route that ends its requests itself (the edge) pays no timer per request.
    keepAliveTimeout: http.keepAliveTimeoutMs,
    bodyLimit: http.bodyLimitBytes,
    // A hop count n trusts the n nearest proxies (proxy-addr's rule, given as a function for the types).
    trustProxy: typeof http.trustProxy === 'number' ? trustHops(http.trustProxy) : http.trustProxy,
    frameworkErrors: frameworkError,
    clientErrorHandler: clientError,
    serverFactory: (handler: (request: IncomingMessage, response: ServerResponse) => void) =>
      front.server(handler, { keepAliveTimeout: http.keepAliveTimeoutMs, requestTimeout: http.requestTimeoutMs, connectionTimeout: http.connectionTimeoutMs }),
  };
  const app = deps.logger
    ? Fastify({ ...options, loggerInstance: deps.logger as FastifyBaseLogger })
    : Fastify({ ...options, logger: false });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  registerProblemHandlers(app, sendErrorPage);
  const routeTable: RouteEntry[] = [];
  app.decorate('routeTable', routeTable);
  app.addHook('onRoute', (route) => {
    // Every route is answered within HTTP_HANDLER_TIMEOUT_MS but one that bounds its requests itself.
    if (!route.config?.ownTimeouts) route.handlerTimeout ??= http.handlerTimeoutMs;
    // A route that streams for long (config.longLived: the edge's server-sent events and WebSockets)
    // is not cut by HTTP_CONNECTION_TIMEOUT_MS; its handler uses reply.hijack(), which also clears
    // HTTP_HANDLER_TIMEOUT_MS, or says ownTimeouts. HTTP_REQUEST_TIMEOUT_MS bounds only receiving
    // the request. A hook of its own, so other routes do not pay for the check.
    if (route.config?.longLived) route.onRequest = [...[route.onRequest ?? []].flat(), noSocketTimeout];
    // What a customer sends to a service through the edge is the service's business, not tollgate's.
    if (!route.config?.passesThrough) route.preValidation = [refuseUnstorableText, ...[route.preValidation ?? []].flat()];
    // The web site's pages (hidden from the API reference) are not part of the JSON API.
    if ((route.schema as { hide?: boolean } | undefined)?.hide) return;
    for (const method of [route.method].flat()) routeTable.push({ method, url: route.url, schema: route.schema });
  });
  // Node's server.close() ends only the connections idle at that moment, and Fastify ends none
  // later (fastify/fastify#7044): a keep-alive connection whose request finishes during close()
  // would hold the shutdown for keepAliveTimeout (72 s). An answer sent while closing says
  // `Connection: close`, so its connection ends with it.
  app.addHook('preClose', async () => {
    front.closing = true;
  });
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (front.closing) reply.header('connection', 'close');
    done(null, payload);
  });
  // External plugins first: security headers, CORS, rate limiting.
  await app.register(helmet, { contentSecurityPolicy: CONTENT_SECURITY_POLICY });
  // No cross-origin calls unless CORS_ORIGINS lists the origin: the pages are served by tollgate
  // itself, and an API that answers every origin would let any site's script use a token it got
  // hold of. Credentials (cookies) are never allowed cross-origin.
  await app.register(cors, {
    origin: http.corsOrigins.length > 0 ? http.corsOrigins : false,
    methods: ['GET', 'POST', 'PATCH', 'DELETE'],
    allowedHeaders: ['authorization', 'content-type', 'idempotency-key'],
    exposedHeaders: ['retry-after', 'idempotent-replayed', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset'],
    credentials: false,
    maxAge: 600,
  });
  await registerRateLimiting(app);
  // Several nodes: requests for another node's server go there, before any route's hook writes.
  const forwarder = deps.cluster ? new Forwarder(deps.cluster) : null;
  forwarder?.register(app);
  // The OpenAPI document of every route registered after it, from the routes' zod schemas (/docs).
  await app.register(swagger, {
    openapi: { info: { title: 'tollgate', version: '1' }, components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } } },
    transform: jsonSchemaTransform,
  });
  // Four groups, each with its one auth hook: anyone, customers, operators, services (metering).
  await app.register(publicApi(deps));
  await app.register(customerApi(deps));
  await app.register(operatorApi(deps));
  await app.register(meteringApi(deps, forwarder, http.handlerTimeoutMs));
  // The edge: customers' traffic to their services (its WebSockets are attached by the runtime).
  await app.register(edgeHttp(deps.edge, front));
  // The web site: the customer portal, the operators' console, the API reference.
  const live = new LiveStreams({ bus: deps.events, occupancy: deps.occupancy, log: app.log });
  await app.register(webSite({ ...deps, live, openApi: () => app.swagger() }));
  return app;
}
