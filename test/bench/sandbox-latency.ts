import { randomUUID } from 'node:crypto';
import { load, type LoadResult } from './load.js';
import { say } from './util.js';

/**
 * The card-network sandbox's own latency: POST /v1/holds (an authorization, committed in its
 * schema with its idempotency key) straight at the sandbox, at the concurrencies the opens use,
 * so its share of an open's latency can be subtracted.
 */
export async function tokenizeTestCard(sandboxUrl: string): Promise<string> {
  const response = await fetch(`${sandboxUrl}/v1/tokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': `bench:token:${randomUUID()}` },
    body: JSON.stringify({ number: '4242424242424242', expMonth: 12, expYear: 2031, cvc: '123' }),
  });
  if (response.status !== 201) throw new Error(`tokenize: ${response.status} ${await response.text()}`);
  return ((await response.json()) as { token: string }).token;
}

export async function measureSandboxLatency(
  sandboxUrl: string,
  options: { concurrencies: number[]; seconds: number; maxRequests: number },
): Promise<LoadResult[]> {
  const token = await tokenizeTestCard(sandboxUrl);
  const requests = [
    {
      method: 'POST',
      path: '/v1/holds',
      headers: { 'content-type': 'application/json' },
      setupRequest: (request: { headers?: Record<string, string> }) => {
        const reference = randomUUID();
        return {
          ...request,
          headers: { ...request.headers, 'idempotency-key': `${reference}:authorize` },
          body: JSON.stringify({ token, amount: '5.00', currency: 'USD', reference }),
        };
      },
    },
  ];
  await load({ label: 'sandbox warm-up', url: sandboxUrl, concurrency: 8, seconds: 1, maxRequests: 5000, requests, quiet: true });
  const rows: LoadResult[] = [];
  for (const concurrency of options.concurrencies) {
    const result = await load({
      label: `sandbox authorize c=${concurrency}`,
      url: sandboxUrl,
      concurrency,
      seconds: options.seconds,
      maxRequests: options.maxRequests,
      requests,
    });
    say(`sandbox c=${concurrency}: ${result.perSecond}/s, p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms (${result.non2xx} non-2xx)`);
    rows.push(result);
  }
  return rows;
}
