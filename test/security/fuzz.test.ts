import fc from 'fast-check';
import type { InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { RouteEntry } from '../../src/app.js';
import { createService, signUp } from '../helpers/customers.js';
import { createOperator } from '../helpers/operators.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

/**
 * Fuzzing every route (issue 15): requests generated from each route's own zod schemas (read from
 * the app's route table, turned into JSON Schema), then made hostile (huge numbers, deep nesting,
 * long strings, odd unicode, wrong types, broken JSON, bad headers), sent as customers, operators
 * of each role, and strangers. No answer may be a 5xx, carry a stack trace or a file path, or be
 * anything but problem+json when it is an error. A fixed budget of runs keeps it well under a
 * minute in `npm test`, from a fixed seed; FUZZ_SEED=random FUZZ_RUNS=20000 explores further, and
 * FUZZ_SEED=<n> replays a run (a failure names its seed).
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 2000);
// A fixed seed in `npm test`, so a run that passed passes again; FUZZ_SEED=random explores.
const SEED = process.env.FUZZ_SEED === 'random' ? undefined : Number(process.env.FUZZ_SEED ?? 20261115);

type JsonSchema = {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  pattern?: string;
  format?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
};

let tollgate: TestTollgate;
let routes: RouteEntry[];
/** Ids that exist, so generated requests reach past "not found". */
const known: string[] = [];
const credentials: Record<string, Record<string, string>> = {};
let freshCustomerToken: () => Promise<string>;

beforeAll(async () => {
  tollgate = await startTestTollgate();
  const { serviceId, serverId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '1.00', maxUsers: 5 });
  const customer = await signUp(tollgate.app, { outstandingLimit: '50.00' });
  freshCustomerToken = async () =>
    (
      await tollgate.app.inject({ method: 'POST', url: '/v1/auth/tokens', payload: { email: customer.account.email, password: 'analytical engine' } })
    ).json().token;
  const session = await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '1.00' } });
  known.push(serviceId, serverId, customer.account.id, session.json().id);
  const support = await createOperator(tollgate.app, tollgate.adminToken, { name: 'fuzz-support', role: 'support' });
  const readOnly = await createOperator(tollgate.app, tollgate.adminToken, { name: 'fuzz-reader', role: 'read_only' });
  Object.assign(credentials, {
    none: {},
    customer: customer.auth,
    admin: { authorization: `Bearer ${tollgate.adminToken}` },
    support: { authorization: `Bearer ${support.apiKey}` },
    readOnly: { authorization: `Bearer ${readOnly.apiKey}` },
    bootstrap: { authorization: `Bearer ${tollgate.bootstrapToken}` },
    garbage: { authorization: 'Bearer tg_not-a-token' },
    longGarbage: { authorization: `Bearer ${'x'.repeat(600)}` },
    basic: { authorization: 'Basic dXNlcjpwYXNz' },
  });
  // Operator ids stay out of `known`: a generated key rotation would lock the fuzzer's own admin out.
  routes = tollgate.app.routeTable.filter((r) => r.method !== 'HEAD');
});
afterAll(async () => {
  await tollgate?.stop();
});

const toJsonSchema = (schema: unknown): JsonSchema | null =>
  schema instanceof z.ZodType ? (z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema) : null;

/** Values that fit the schema, roughly: the starting point that hostile mutations start from. */
function arbitraryOf(schema: JsonSchema | undefined, depth = 0): fc.Arbitrary<unknown> {
  if (!schema || depth > 6) return fc.anything({ maxDepth: 1 });
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (schema.enum) return fc.constantFrom(...schema.enum);
  const choices = schema.anyOf ?? schema.oneOf;
  if (choices) return fc.oneof(...choices.map((c) => arbitraryOf(c, depth + 1)));
  if (schema.allOf?.length) return arbitraryOf(schema.allOf[0], depth + 1);
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case 'object': {
      const entries = Object.entries(schema.properties ?? {});
      const required = new Set(schema.required ?? []);
      return fc.record(
        Object.fromEntries(entries.map(([key, value]) => [key, arbitraryOf(value, depth + 1)])),
        { requiredKeys: entries.map(([key]) => key).filter((key) => required.has(key)) },
      );
    }
    case 'array':
      return fc.array(arbitraryOf(schema.items, depth + 1), { maxLength: 3 });
    case 'integer':
      return fc.integer({ min: Math.max(schema.minimum ?? -1e6, -1e9), max: Math.min(schema.maximum ?? 1e6, 1e9) });
    case 'number':
      return fc.double({ min: Math.max(schema.minimum ?? -1e6, -1e9), max: Math.min(schema.maximum ?? 1e6, 1e9), noNaN: true });
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'string': {
      if (schema.format === 'uuid') return fc.oneof({ arbitrary: fc.constantFrom(...known), weight: 3 }, { arbitrary: fc.uuid(), weight: 1 });
      if (schema.pattern) {
        try {
          return fc.stringMatching(new RegExp(schema.pattern));
        } catch {
          // A pattern fast-check cannot generate from: plain strings below.
        }
      }
      return fc.oneof(
        fc.constantFrom('1.00', '0.01', '12.50', '100000.00', '0.000001', ...known),
        fc.string({ minLength: schema.minLength ?? 0, maxLength: Math.min(schema.maxLength ?? 30, 30) }),
      );
    }
    default:
      return fc.anything({ maxDepth: 2 });
  }
}

const nested = (depth: number, leaf: unknown): unknown => {
  let value = leaf;
  for (let i = 0; i < depth; i++) value = i % 2 ? [value] : { a: value };
  return value;
};

/** What a hostile client sends in place of a value. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    1e308, -1e308, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 2, -0, 5e-324, 0.1 + 0.2, -1, 0, 2 ** 31, 2 ** 63,
    '1e309', '-1', '0', '', ' ', '00000000-0000-0000-0000-000000000000', '99999999999999999999.99', '1.2.3', '١٢٣', '９９',
    '\u0000', '\ud800', '\udfff\ud800', '\u202e\u0635', '\ufeff', 'e\u0301\u0301\u0301', '🏳️‍🌈'.repeat(50),
    '__proto__', 'constructor', "' or 1=1 --", '=HYPERLINK("http://x")', '<script>alert(1)</script>', '../../../etc/passwd', '%00', '${jndi:x}',
    null, true, false, [], {}, { __proto__: { polluted: true } }, { constructor: { prototype: { polluted: true } } },
  ),
  fc.constant('x'.repeat(70_000)),
  fc.constant('é'.repeat(20_000)),
  fc.constant(nested(2_000, 1)),
  fc.constant(Array.from({ length: 5_000 }, (_, i) => i)),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.integer(),
  fc.double(),
  fc.anything({ maxDepth: 3 }),
);

/** Replaces one value somewhere in `value` (or all of it) with a hostile one. */
function mutate(value: unknown, path: number[], replacement: unknown): unknown {
  if (path.length === 0 || value === null || typeof value !== 'object') return replacement;
  const keys = Object.keys(value);
  if (keys.length === 0) return replacement;
  const key = keys[path[0]! % keys.length]!;
  const copy: Record<string, unknown> = Array.isArray(value) ? ([...value] as unknown as Record<string, unknown>) : { ...value };
  copy[key] = mutate((value as Record<string, unknown>)[key], path.slice(1), replacement);
  return copy;
}

const pathValue = fc.oneof(
  fc.uuid(),
  fc.constantFrom(...['current', 'terminate', 'retry', 'void', '', '..', '%00', '%E0%A4%A', 'a'.repeat(500), '%F0%9F%98%80']),
  fc.string({ maxLength: 20 }),
);

function requestFor(route: RouteEntry) {
  const schema = route.schema as { body?: unknown; querystring?: unknown; params?: unknown } | undefined;
  const body = toJsonSchema(schema?.body);
  const query = toJsonSchema(schema?.querystring);
  const params = toJsonSchema(schema?.params);
  const paramNames = [...route.url.matchAll(/:(\w+)/g)].map((m) => m[1]!);
  // Mostly the credential the route is for, so requests get past authentication; the rest any.
  const operatorRoute = /^\/(v1\/ops|v1\/servers|v1\/services\/|metrics)/.test(route.url) || (route.url === '/v1/services' && route.method === 'POST');
  const rightful = operatorRoute ? fc.constantFrom('admin', 'admin', 'support', 'readOnly') : fc.constant('customer');
  return fc.record({
    who: fc.oneof({ arbitrary: rightful, weight: 3 }, { arbitrary: fc.constantFrom(...Object.keys(credentials)), weight: 1 }),
    params: fc.record(
      Object.fromEntries(paramNames.map((name) => [name, fc.oneof({ arbitrary: arbitraryOf(params?.properties?.[name]).map(String), weight: 3 }, { arbitrary: pathValue, weight: 1 })])),
    ),
    query: query ? arbitraryOf(query) : fc.constant(undefined),
    body: body ? arbitraryOf(body) : fc.option(fc.anything({ maxDepth: 2 }), { nil: undefined }),
    mutation: fc.option(
      fc.record({ target: fc.constantFrom('body', 'query', 'whole body'), path: fc.array(fc.nat(8), { maxLength: 4 }), value: hostileValue }),
      { freq: 2, nil: undefined },
    ),
    raw: fc.option(
      fc.constantFrom(
        { payload: '{"email": "a@b.c", ', type: 'application/json' },
        { payload: '{"__proto__": {"admin": true}, "name": "x"}', type: 'application/json' },
        { payload: '{"constructor": {"prototype": {"x": 1}}}', type: 'application/json' },
        { payload: 'name=x&maxUsers=1', type: 'application/x-www-form-urlencoded' },
        { payload: '<xml/>', type: 'application/xml' },
        { payload: 'x'.repeat(200_000), type: 'application/json' },
        { payload: '[' .repeat(50_000), type: 'application/json' },
        { payload: '\u0000\u0001', type: 'text/plain' },
      ),
      { freq: 8, nil: undefined },
    ),
    idempotencyKey: fc.option(fc.oneof(fc.uuid(), fc.constantFrom('', ' ', 'k'.repeat(300), 'é', 'a b')), { freq: 3, nil: undefined }),
  });
}

function injectOptions(route: RouteEntry, generated: fc.Arbitrary<unknown> extends never ? never : any): InjectOptions {
  let { body, query } = generated;
  const { mutation, raw, who, params, idempotencyKey } = generated;
  if (mutation?.target === 'body') body = mutate(body, mutation.path, mutation.value);
  if (mutation?.target === 'whole body') body = mutation.value;
  if (mutation?.target === 'query') query = mutate(query ?? {}, mutation.path, mutation.value);
  const url = route.url.replace(/:(\w+)/g, (_, name: string) => encodeURIComponent(String(params[name])));
  const search = new URLSearchParams();
  if (query && typeof query === 'object') {
    for (const [key, value] of Object.entries(query as Record<string, unknown>)) {
      if (value !== undefined) search.append(key, typeof value === 'string' ? value : JSON.stringify(value) ?? '');
    }
  }
  const headers: Record<string, string> = { ...credentials[who] };
  if (idempotencyKey !== undefined) headers['idempotency-key'] = idempotencyKey;
  const options: InjectOptions = { method: route.method as InjectOptions['method'], url: search.size > 0 ? `${url}?${search}` : url, headers };
  if (raw) return { ...options, payload: raw.payload, headers: { ...headers, 'content-type': raw.type } };
  if (body !== undefined && route.method !== 'GET') return { ...options, payload: JSON.stringify(body) ?? 'null', headers: { ...headers, 'content-type': 'application/json' } };
  return options;
}

const STACK_OR_PATH = [/\n\s+at\s/, /\bat [\w.<>]+ \(/, /\/work\//, /\/(src|test|node_modules)\/[\w/.-]+\.(ts|js)/, /node:internal/, /\.ts:\d+/];

describe('every route, fuzzed', () => {
  it('answers generated and hostile requests with no 5xx, no stack trace, and problem+json for every error', async () => {
    expect(routes.length).toBeGreaterThan(20);
    const arbitrary = fc.oneof(...routes.map((route) => requestFor(route).map((generated) => ({ route, generated }))));
    const seen = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(arbitrary, async ({ route, generated }) => {
        const options = injectOptions(route, generated);
        // Logging out would leave the customer credential dead for the rest of the run: a fresh token logs out instead.
        if (route.url === '/v1/auth/tokens/current' && generated.who === 'customer') options.headers = { authorization: `Bearer ${await freshCustomerToken()}` };
        const answer = await tollgate.app.inject(options);
        const where = `${options.method} ${String(options.url).slice(0, 200)} → ${answer.statusCode} ${answer.body.slice(0, 300)}`;
        seen.set(`${route.method} ${route.url} ${answer.statusCode}`, (seen.get(`${route.method} ${route.url} ${answer.statusCode}`) ?? 0) + 1);
        expect(answer.statusCode, where).toBeLessThan(500);
        for (const pattern of STACK_OR_PATH) expect(answer.body, where).not.toMatch(pattern);
        if (answer.statusCode >= 400) {
          expect(answer.headers['content-type'], where).toContain('application/problem+json');
          expect(answer.json(), where).toMatchObject({ code: expect.stringMatching(/^[A-Z_]+$/), detail: expect.any(String) });
        }
      }),
      { numRuns: RUNS, ...(SEED !== undefined && { seed: SEED }), endOnFailure: true },
    );
    if (process.env.FUZZ_REPORT) console.log([...seen].sort().map(([k, n]) => `${k} ×${n}`).join("\n"));
    // Prototype pollution would show on every object.
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
    // The run reached past validation on most routes: some answer other than 400/401/403/404 for many of them.
    const deep = new Set([...seen.keys()].filter((k) => !/ (400|401|403|404|413|415)$/.test(k)).map((k) => k.split(' ').slice(0, 2).join(' ')));
    expect(deep.size, [...seen.keys()].join('\n')).toBeGreaterThan(routes.length / 3);
  }, 600_000);
});
