import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';

export const VISA_OK = '4242424242424242';
export const VISA_DECLINED = '4000000000000002';

export function signUpBody(overrides: Record<string, unknown> = {}) {
  return {
    name: 'Ada Lovelace',
    email: `ada-${randomUUID()}@example.com`,
    password: 'analytical engine',
    card: { number: VISA_OK, expMonth: 12, expYear: 2031, cvc: '123' },
    estimatedStorageGb: 20,
    estimatedProcessingHours: 3.5,
    outstandingLimit: '100.00',
    ...overrides,
  };
}

/** Signs a customer up through the API and returns their bearer token and account. */
export async function signUp(app: FastifyInstance, overrides: Record<string, unknown> = {}, options: { remoteAddress?: string } = {}) {
  const response = await app.inject({ method: 'POST', url: '/v1/accounts', payload: signUpBody(overrides), ...options });
  if (response.statusCode !== 201) throw new Error(`sign-up failed: ${response.statusCode} ${response.body}`);
  const body = response.json() as { account: { id: string; email: string }; token: string };
  return { ...body, auth: { authorization: `Bearer ${body.token}` } };
}

/** Creates a server and a service through the operator API. */
export async function createService(
  app: FastifyInstance,
  adminToken: string,
  options: { pricePerMinute: string; maxUsers?: number; serverMaxUsers?: number },
) {
  const headers = { authorization: `Bearer ${adminToken}` };
  const server = await app.inject({
    method: 'POST',
    url: '/v1/servers',
    headers,
    payload: { name: `server-${randomUUID()}`, maxUsers: options.serverMaxUsers ?? 100 },
  });
  if (server.statusCode !== 201) throw new Error(`server: ${server.body}`);
  const service = await app.inject({
    method: 'POST',
    url: '/v1/services',
    headers,
    payload: {
      name: `service-${randomUUID()}`,
      serverId: server.json().id,
      pricePerMinute: options.pricePerMinute,
      maxUsers: options.maxUsers ?? 100,
    },
  });
  if (service.statusCode !== 201) throw new Error(`service: ${service.body}`);
  return { serverId: server.json().id as string, serviceId: service.json().id as string };
}
