import type { RouteDeps } from '../http/deps.js';
import type { ConsoleSessionDeps } from '../operators/console-sessions.js';
import type { LiveStreams } from './live-streams.js';

/** What the web site is given: the JSON API's dependencies (pages call the same commands and queries), its live streams, and the console's log-in. */
export interface WebDeps extends RouteDeps {
  live: LiveStreams;
  console: ConsoleSessionDeps;
  /** The OpenAPI document of the JSON API (@fastify/swagger). */
  openApi: () => unknown;
}
