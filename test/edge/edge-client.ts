import { randomUUID } from 'node:crypto';
import type { TestTollgate } from '../helpers/tollgate.js';
import { signUpBody } from '../helpers/customers.js';

export interface Access {
  url: string;
  token: string;
  expiresAt: string;
}

/** A listening test tollgate, spoken to over HTTP as a customer would. */
export async function listen(tollgate: TestTollgate): Promise<string> {
  const address = await tollgate.app.listen({ port: 0, host: '127.0.0.1' });
  return address.replace('localhost', '127.0.0.1');
}

export async function call(base: string, method: string, path: string, token: string | null, body?: unknown) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/** A server and a service whose upstream is `upstreamUrl`; the answer carries the signing secret. */
export async function serviceWithUpstream(base: string, adminToken: string, upstreamUrl: string, pricePerMinute = '0.60') {
  const server = await call(base, 'POST', '/v1/servers', adminToken, { name: `server-${randomUUID()}`, maxUsers: 100 });
  const service = await call(base, 'POST', '/v1/services', adminToken, {
    name: `service-${randomUUID()}`,
    serverId: server.body.id,
    pricePerMinute,
    maxUsers: 100,
    upstreamUrl,
  });
  if (service.status !== 201) throw new Error(`service: ${service.status} ${JSON.stringify(service.body)}`);
  return service.body as { id: string; upstreamUrl: string; signingSecret: string };
}

export async function customer(base: string) {
  const signed = await call(base, 'POST', '/v1/accounts', null, signUpBody());
  if (signed.status !== 201) throw new Error(`sign-up: ${signed.status}`);
  return { token: signed.body.token as string, accountId: signed.body.account.id as string, email: signed.body.account.email as string };
}

export async function openSession(base: string, customerToken: string, body: Record<string, unknown>) {
  const opened = await call(base, 'POST', '/v1/sessions', customerToken, body);
  if (opened.status !== 201) throw new Error(`open: ${opened.status} ${JSON.stringify(opened.body)}`);
  return opened.body as { id: string; cutoffAt: string; access: Access };
}

/** Reads a streaming answer until it ends or breaks: when, how, and what came. */
export async function readUntilEnd(url: string, token: string): Promise<{ endedAt: number; broken: boolean; text: string; status: number }> {
  const response = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  let text = '';
  const decoder = new TextDecoder();
  try {
    for await (const chunk of response.body!) text += decoder.decode(chunk as Uint8Array, { stream: true });
    return { endedAt: Date.now(), broken: false, text, status: response.status };
  } catch {
    return { endedAt: Date.now(), broken: true, text, status: response.status };
  }
}
