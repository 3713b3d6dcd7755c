import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { findAccount, issueToken, signUp } from '../../accounts/accounts.js';
import { requireCustomer } from '../auth.js';
import type { RouteDeps } from '../deps.js';
import { positiveAmount } from '../schemas.js';

const signUpBody = z.object({
  name: z.string().trim().min(1).max(200),
  email: z.email().max(254),
  password: z.string().min(8).max(200),
  card: z.object({
    number: z.string().regex(/^[\d ]{12,23}$/, 'must be the card number digits').transform((n) => n.replaceAll(' ', '')),
    expMonth: z.number().int().min(1).max(12),
    expYear: z.number().int().min(2000).max(2100),
    cvc: z.string().regex(/^\d{3,4}$/, 'must be 3 or 4 digits'),
  }),
  estimatedStorageGb: z.number().nonnegative().max(1e9),
  estimatedProcessingHours: z.number().nonnegative().max(1e9),
  outstandingLimit: positiveAmount(2),
});

export function accountRoutes(deps: RouteDeps): FastifyPluginAsyncZod {
  return async (app) => {
    app.post('/v1/accounts', { schema: { body: signUpBody } }, async (request, reply) => {
      const { outstandingLimit, ...rest } = request.body;
      const created = await signUp(deps, { ...rest, outstandingLimitMicros: outstandingLimit });
      return reply.code(201).send(created);
    });

    app.post(
      '/v1/auth/tokens',
      { schema: { body: z.object({ email: z.string().min(1), password: z.string().min(1) }) } },
      async (request, reply) => reply.code(201).send(await issueToken(deps, request.body.email, request.body.password)),
    );

    app.get('/v1/account', async (request) => {
      const accountId = await requireCustomer(deps.tokens, request);
      return { account: await findAccount(deps.sql, accountId) };
    });
  };
}
