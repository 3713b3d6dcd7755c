import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';

const ASSETS_DIR = fileURLToPath(new URL('./assets/', import.meta.url));
const TYPES: Record<string, string> = {
  css: 'text/css; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  svg: 'image/svg+xml',
};

/**
 * Every asset ships in the package (DESIGN rule 17) and is read once at start-up: a handful of
 * small files, served from memory. The names are fixed at start, so no path a client sends
 * reaches the file system.
 */
export function registerAssets(app: FastifyInstance): void {
  const files = new Map<string, { type: string; body: Buffer }>();
  for (const name of readdirSync(ASSETS_DIR)) {
    const type = TYPES[name.split('.').pop() ?? ''];
    if (type) files.set(name, { type, body: readFileSync(ASSETS_DIR + name) });
  }
  app.get('/assets/:name', { schema: { params: z.object({ name: z.string().max(100) }), hide: true } }, async (request, reply) => {
    const file = files.get((request.params as { name: string }).name);
    if (!file) return reply.callNotFound();
    // Short: a new release's script must reach pages within minutes.
    return reply.type(file.type).header('cache-control', 'public, max-age=300').send(file.body);
  });
}
