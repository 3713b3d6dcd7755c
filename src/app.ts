import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { Logger } from './logger.js';
import type { RouteDeps } from './http/deps.js';
import { customerApi } from './http/plugins/customer-api.js';
import { operatorApi } from './http/plugins/operator-api.js';
import { publicApi } from './http/plugins/public-api.js';
import { registerProblemHandlers } from './http/problem.js';

/** Builds the HTTP app around running dependencies; it does not listen, so tests inject into it. */
export async function buildApp(deps: RouteDeps & { logger: Logger | false }): Promise<FastifyInstance> {
  const app = deps.logger ? Fastify({ loggerInstance: deps.logger as FastifyBaseLogger }) : Fastify({ logger: false });
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
  // Three groups, each with its one auth hook: anyone, customers, operators.
  await app.register(publicApi(deps));
  await app.register(customerApi(deps));
  await app.register(operatorApi(deps));
  return app;
}
