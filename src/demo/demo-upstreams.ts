import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { Sql } from '../db/sql.js';
import { chatService } from './chat.js';
import { renderJobService } from './render-job.js';
import { textStatsService } from './text-stats.js';

/** Which demo service answers for which service of the demo catalogue (src/db/seed.ts). */
const DEMO_SERVICES = {
  'genome-aligner': textStatsService,
  'tax-suite': textStatsService,
  'render-farm': renderJobService,
  'cad-studio': chatService,
} as const;

/**
 * The demo catalogue's services, really there: small upstreams on loopback ports, started with
 * tollgate when it runs embedded with its demo catalogue, so a new user can use a service through
 * the edge and watch it being cut (README "Use a service"). Each start takes new ports and points
 * the demo services' upstreamUrl at them (before the catalogue is loaded); a service whose
 * upstream an operator set elsewhere is left alone.
 */
export async function startDemoUpstreams(sql: Sql): Promise<{ started: string[]; close(): Promise<void> }> {
  const servers: Server[] = [];
  const started: string[] = [];
  for (const [name, make] of Object.entries(DEMO_SERVICES)) {
    const [row] = await sql<{ id: string; upstreamUrl: string | null }[]>`
      select id, upstream_url as "upstreamUrl" from services where name = ${name}`;
    if (!row || (row.upstreamUrl !== null && !row.upstreamUrl.startsWith('http://127.0.0.1:'))) continue;
    let secret = '';
    const server = make(() => secret);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    servers.push(server);
    const { port } = server.address() as AddressInfo;
    const [updated] = await sql<{ signingSecret: string }[]>`
      update services set upstream_url = ${`http://127.0.0.1:${port}/`},
        signing_secret = coalesce(signing_secret, ${`tgs_${randomBytes(32).toString('base64url')}`})
      where id = ${row.id} returning signing_secret as "signingSecret"`;
    secret = updated!.signingSecret;
    started.push(`${name} http://127.0.0.1:${port}/`);
  }
  return {
    started,
    async close() {
      await Promise.all(
        servers.map((server) => {
          server.closeAllConnections();
          return new Promise<void>((resolve) => server.close(() => resolve()));
        }),
      );
    },
  };
}
