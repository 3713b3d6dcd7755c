import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import { isTimeZone } from '../../billing/zoned-time.js';
import { PERIODS, usageCsv, usageReport, type UsageQuery } from '../../reports/usage.js';
import type { Sql } from '../../db/sql.js';
import { errors } from '../../errors.js';
import { instantParam, problems, textBody } from '../schemas.js';

const DAY = 86_400_000;

export const usageQuerySchema = z.object({
  period: z.enum(PERIODS).default('day'),
  from: instantParam.optional(),
  to: instantParam.optional(),
  serviceId: z.uuid().optional(),
  timeZone: z.string().max(64).refine(isTimeZone, 'must be an IANA time zone, like Europe/Paris').default('UTC'),
  format: z.enum(['json', 'csv']).default('json'),
});

export const usageRowSchema = z.object({
  period: z.iso.datetime(),
  key: z.uuid(),
  name: z.string(),
  sessions: z.number().int(),
  minutes: z.number(),
  uses: z.number().int(),
  revenue: z.string(),
  customers: z.number().int(),
  peakConcurrent: z.number().int(),
});

export const usageResponses = { 200: z.union([z.object({ usage: z.array(usageRowSchema) }), textBody]), ...problems };

/**
 * The window a usage query covers (the last 30 days by default), bounded so that a report is
 * never unbounded work: 31 days of hours, 400 days of anything longer.
 */
export function usageWindow(query: z.infer<typeof usageQuerySchema>, now: number): Pick<UsageQuery, 'from' | 'to' | 'asOf'> {
  const to = query.to ? new Date(query.to) : new Date(now);
  const from = query.from ? new Date(query.from) : new Date(to.getTime() - 30 * DAY);
  const longest = query.period === 'hour' ? 31 * DAY : 400 * DAY;
  if (from >= to) throw errors.validation('from must be before to.');
  if (to.getTime() - from.getTime() > longest) throw errors.validation(`a ${query.period} report covers at most ${longest / DAY} days.`);
  return { from, to, asOf: new Date(now) };
}

export async function answerUsage(db: Sql, reply: FastifyReply, query: UsageQuery, format: 'json' | 'csv') {
  const usage = await usageReport(db, query);
  if (format === 'csv') return reply.type('text/csv; charset=utf-8').send(usageCsv(usage));
  return { usage };
}
