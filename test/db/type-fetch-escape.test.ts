import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isTypeFetchEscape } from '../../src/db/type-fetch-escape.js';

const TYPE_QUERY = `
      select b.oid, b.typarray
      from pg_catalog.pg_type a
      left join pg_catalog.pg_type b on b.oid = a.typelem
      where a.typcategory = 'A'
      group by b.oid, b.typarray
      order by b.oid
    `;

/** A Node process with the guard installed that rejects `reasons` unhandled, one after the other; its exit code and what it printed. */
function processRejecting(reasons: string[]): Promise<{ code: number | null; output: string }> {
  const guard = path.resolve(import.meta.dirname, '../../src/db/type-fetch-escape.ts');
  const script = `
    import { survivePostgresTypeFetchEscapes } from ${JSON.stringify(guard)};
    survivePostgresTypeFetchEscapes({ warn: (fields, message) => console.log('warned:', message) });
    const reasons = [${reasons.join(',')}];
    for (const reason of reasons) { Promise.reject(reason); await new Promise((r) => setTimeout(r, 50)); }
    console.log('still running');
  `;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    child.on('exit', (code) => resolve({ code, output }));
  });
}

describe('the driver’s dropped array-types promise', () => {
  it('is told from any other rejection by the query it carries', () => {
    expect(isTypeFetchEscape(Object.assign(new Error('write CONNECTION_CLOSED 127.0.0.1:5432'), { code: 'CONNECTION_CLOSED', query: TYPE_QUERY }))).toBe(true);
    expect(isTypeFetchEscape(Object.assign(new Error('write CONNECTION_CLOSED'), { code: 'CONNECTION_CLOSED', query: 'select 1' }))).toBe(false);
    expect(isTypeFetchEscape(new Error('boom'))).toBe(false);
    expect(isTypeFetchEscape(null)).toBe(false);
  });

  it('leaves the process running, logged, while any other unhandled rejection still ends it', async () => {
    const escape = `Object.assign(new Error('write CONNECTION_CLOSED'), { code: 'CONNECTION_CLOSED', query: ${JSON.stringify(TYPE_QUERY)} })`;
    const survived = await processRejecting([escape]);
    expect(survived.output).toContain('warned:');
    expect(survived.output).toContain('still running');
    expect(survived.code).toBe(0);
    const ended = await processRejecting([escape, `new Error('a real bug')`]);
    expect(ended.output).toContain('a real bug');
    expect(ended.output).not.toContain('still running');
    expect(ended.code).not.toBe(0);
  });
});
