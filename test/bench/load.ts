import autocannon, { type AutocannonRequest } from 'autocannon';
import { distribution, round, say } from './util.js';

export interface LoadResult {
  label: string;
  concurrency: number;
  seconds: number;
  completed: number;
  ok: number;
  perSecond: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  statusCodes: Record<string, number>;
}

/**
 * One closed-loop run of autocannon on loopback: `concurrency` connections each sending the
 * next request as soon as the previous answer arrives, for at most `seconds` and at most
 * `maxRequests` requests. Latencies are kept exactly (autocannon's own histogram rounds to whole
 * milliseconds) from its response events; only 2xx answers count as done.
 */
export function load(options: {
  label: string;
  /** Several urls share the connections between them (connection i to url i mod their number). */
  url: string | string[];
  concurrency: number;
  seconds: number;
  maxRequests: number;
  requests: AutocannonRequest[];
  /** Whether a response of this request index counts as one completed unit (default: all). */
  quiet?: boolean;
}): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const latencies: number[] = [];
    let done = 0;
    const started = performance.now();
    const instance = autocannon(
      {
        url: options.url,
        connections: options.concurrency,
        duration: options.seconds,
        maxOverallRequests: options.maxRequests,
        timeout: 30,
        requests: options.requests,
      },
      (error, result) => {
        clearInterval(ticker);
        if (error) return reject(error);
        const seconds = (performance.now() - started) / 1000;
        const d = distribution(latencies);
        const statusCodes = Object.fromEntries(Object.entries(result.statusCodeStats).map(([code, s]) => [code, s.count]));
        resolve({
          label: options.label,
          concurrency: options.concurrency,
          seconds: round(seconds, 2),
          completed: done,
          ok: latencies.length,
          perSecond: round(latencies.length / seconds, 1),
          p50Ms: round(d.p50, 2),
          p90Ms: round(d.p90, 2),
          p99Ms: round(d.p99, 2),
          maxMs: round(d.max, 2),
          non2xx: result.non2xx,
          errors: result.errors,
          timeouts: result.timeouts,
          statusCodes,
        });
      },
    );
    instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
      done++;
      if (status >= 200 && status < 300) latencies.push(ms);
    });
    const ticker = setInterval(() => {
      if (options.quiet) return;
      const elapsed = (performance.now() - started) / 1000;
      say(`  ${options.label}: ${done} answers in ${elapsed.toFixed(0)} s (${(latencies.length / elapsed).toFixed(0)}/s ok)`);
    }, 5000);
  });
}
