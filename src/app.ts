import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { Logger } from './logger.js';
import type { RouteDeps } from './http/deps.js';
import { registerProblemHandlers } from './http/problem.js';
import { accountRoutes } from './http/routes/accounts.js';
import { catalogueRoutes } from './http/routes/catalogue.js';
import { opsRoutes } from './http/routes/ops.js';
import { opsSessionRoutes } from './http/routes/ops-sessions.js';
import { sessionRoutes } from './http/routes/sessions.js';

/** Builds the HTTP app around running dependencies; it does not listen, so tests inject into it. */
export async function buildApp(deps: RouteDeps & { logger: Logger | false }): Promise<FastifyInstance> {
  const app = deps.logger
    ? Fastify({ loggerInstance: deps.logger as FastifyBaseLogger })
    : Fastify({ logger: false });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  registerProblemHandlers(app);
  // Node's server.close() ends only the connections idle at that moment, and Fastify ends none
  // later (fastify/fastify#7044): a keep-alive connection whose request finishes during close()
  // would hold the shutdown for keepAliveTimeout (72 s). An answer sent while closing says
  // `Connection: close`, so its connection ends with it.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close');
    done(null, payload);
  });
  await app.register(accountRoutes(deps));
  await app.register(catalogueRoutes(deps));
  await app.register(sessionRoutes(deps));
  await app.register(opsRoutes(deps));
  await app.register(opsSessionRoutes(deps));
  return app;
}
