import type { UsageRow } from '../../reports/usage.js';
import { html, type SafeHtml } from '../html.js';

export type Metric = 'sessions' | 'minutes' | 'revenue';

const METRIC_LABELS: Record<Metric, string> = { sessions: 'Sessions', minutes: 'Minutes', revenue: 'Revenue' };
const WIDTH = 720;
const HEIGHT = 120;
const LEFT = 48;
const BOTTOM = 18;

// Revenue is a decimal string from the report; for drawing a bar's height a float is exact enough (no money is computed here).
const valueOf = (row: UsageRow, metric: Metric) => (metric === 'revenue' ? Number(row.revenue) : row[metric]);

/**
 * One bar chart per service for a metric, over the periods of the report (periods with no use
 * are empty slots, so the time axis stays true), drawn as inline SVG with a text alternative.
 */
export function usageChart(rows: readonly UsageRow[], metric: Metric, periods: readonly string[], periodLabel: (iso: string) => string): SafeHtml {
  const services = [...new Map(rows.map((r) => [r.key, r.name])).entries()].sort((a, b) => a[1].localeCompare(b[1]));
  if (services.length === 0) return html`<p>No use in this window.</p>`;
  const slot = (WIDTH - LEFT) / Math.max(1, periods.length);
  return html`${services.map(([key, name]) => {
    const byPeriod = new Map(rows.filter((r) => r.key === key).map((r) => [r.period, valueOf(r, metric)]));
    const max = Math.max(0, ...byPeriod.values());
    const total = [...byPeriod.values()].reduce((a, b) => a + b, 0);
    const scale = max > 0 ? (HEIGHT - BOTTOM - 4) / max : 0;
    const label = `${METRIC_LABELS[metric]} of ${name} per period: total ${metric === 'revenue' ? total.toFixed(2) : Math.round(total * 100) / 100}, highest ${max}`;
    return html`<figure class="chart">
<figcaption>${name}: ${METRIC_LABELS[metric].toLowerCase()} (total ${metric === 'revenue' ? total.toFixed(2) : Math.round(total * 100) / 100})</figcaption>
<svg role="img" aria-label="${label}" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="100%" height="${HEIGHT}">
<line class="axis" x1="${LEFT}" y1="${HEIGHT - BOTTOM}" x2="${WIDTH}" y2="${HEIGHT - BOTTOM}"/>
<text x="0" y="12">${max}</text><text x="0" y="${HEIGHT - BOTTOM}">0</text>
${periods.map((period, i) => {
  const value = byPeriod.get(period) ?? 0;
  const h = value * scale;
  return html`<rect class="bar" x="${(LEFT + i * slot + 1).toFixed(1)}" y="${(HEIGHT - BOTTOM - h).toFixed(1)}" width="${Math.max(1, slot - 2).toFixed(1)}" height="${h.toFixed(1)}"><title>${periodLabel(period)}: ${value}</title></rect>`;
})}
<text x="${LEFT}" y="${HEIGHT - 4}">${periods[0] ? periodLabel(periods[0]) : ''}</text>
<text x="${WIDTH}" y="${HEIGHT - 4}" text-anchor="end">${periods.at(-1) ? periodLabel(periods.at(-1)!) : ''}</text>
</svg>
</figure>`;
  })}`;
}

/** The period starts of a window, in UTC (the console's charts are drawn in UTC). */
export function periodStarts(from: number, to: number, period: 'hour' | 'day'): string[] {
  const step = period === 'hour' ? 3_600_000 : 86_400_000;
  const starts: string[] = [];
  for (let t = Math.floor(from / step) * step; t < to; t += step) starts.push(new Date(t).toISOString());
  return starts;
}
