import type { FastifyInstance } from 'fastify';

/** Settings every test tollgate runs with: limits high enough that no test meets one it does not test. */
export const GENEROUS_LIMITS: Record<string, string> = {
  LOGIN_LIMIT_PER_ADDRESS: '100000',
  LOGIN_LIMIT_PER_EMAIL: '100000',
  SIGNUP_LIMIT_PER_ADDRESS: '100000',
  SIGNUP_LIMIT_PER_EMAIL: '100000',
  OPEN_LIMIT_PER_ACCOUNT: '100000',
  MAX_OPEN_SESSIONS_PER_ACCOUNT: '100000',
  MAX_QUEUED_OPENS_PER_ACCOUNT: '100000',
};

/** The card-network sandbox's fault API token in tests (test/helpers/card-network.ts sends it). */
export const TEST_FAULTS_TOKEN = 'test-card-network-faults-token';

export interface CreatedOperator {
  operator: { id: string; name: string; role: string };
  apiKey: string;
}

/** The bootstrap token creates the first admin operator; its API key is what tests call `adminToken`. */
export async function bootstrapAdmin(app: FastifyInstance, bootstrapToken: string, name = 'test-admin'): Promise<string> {
  return (await createOperator(app, bootstrapToken, { name, role: 'admin' })).apiKey;
}

export async function createOperator(
  app: FastifyInstance,
  token: string,
  body: { name: string; role: 'admin' | 'support' | 'read_only'; password?: string },
): Promise<CreatedOperator> {
  const response = await app.inject({ method: 'POST', url: '/v1/ops/operators', headers: { authorization: `Bearer ${token}` }, payload: body });
  if (response.statusCode !== 201) throw new Error(`operator ${body.name}: ${response.statusCode} ${response.body}`);
  return response.json() as CreatedOperator;
}

/** The same, over HTTP, for a tollgate in a process of its own. */
export async function bootstrapAdminAt(url: string, bootstrapToken: string, name = 'test-admin'): Promise<string> {
  const response = await fetch(`${url}/v1/ops/operators`, {
    method: 'POST',
    headers: { authorization: `Bearer ${bootstrapToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name, role: 'admin' }),
  });
  const text = await response.text();
  if (response.status !== 201) throw new Error(`bootstrap admin: ${response.status} ${text}`);
  return (JSON.parse(text) as CreatedOperator).apiKey;
}
