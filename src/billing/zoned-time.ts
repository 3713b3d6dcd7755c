/**
 * Local weekday and hour of an instant in an IANA time zone, from the platform's own time-zone
 * database (Intl): tariffs are written in the service's local time, and a day that moves its
 * clocks (daylight saving) has 23 or 25 hours, not 24.
 */
export interface LocalHour {
  /** ISO weekday: 1 = Monday … 7 = Sunday. */
  weekday: number;
  hour: number;
  /** The next instant at which the local hour changes. */
  nextHourAt: number;
}

const WEEKDAYS: Record<string, number> = { Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6, Sun: 7 };
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let format = formatters.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      weekday: 'short',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(timeZone, format);
  }
  return format;
}

/** True when the platform knows the zone. */
export function isTimeZone(timeZone: string): boolean {
  try {
    formatter(timeZone);
    return true;
  } catch {
    return false;
  }
}

/**
 * What the zone's clocks show at `at`, minus `at`: the UTC offset then, from Intl. Only asked at
 * whole seconds (day starts and the seconds between them), which is all the clocks show.
 */
function offsetByIntl(timeZone: string, at: number): number {
  const fields: Record<string, number> = {};
  for (const part of offsetFormatter(timeZone).formatToParts(at)) if (part.type !== 'literal') fields[part.type] = Number(part.value);
  return Date.UTC(fields.year!, fields.month! - 1, fields.day!, fields.hour!, fields.minute!, fields.second!) - at;
}

const offsetFormatters = new Map<string, Intl.DateTimeFormat>();
function offsetFormatter(timeZone: string): Intl.DateTimeFormat {
  let format = offsetFormatters.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    offsetFormatters.set(timeZone, format);
  }
  return format;
}

const DAY_MS = 86_400_000;

/** A UTC day's offsets: the one it starts with, and where (if anywhere) the clocks change. */
interface DayOffsets {
  start: number;
  changeAt: number | null;
  after: number;
}

// Per zone, per UTC day: Intl is asked twice a day (and about 17 times more on a day the clocks
// change), so a tariff walked over years costs arithmetic, not a formatter call per hour.
const dayCache = new Map<string, Map<number, DayOffsets>>();
const DAY_CACHE_LIMIT = 200_000;

function dayOffsets(timeZone: string, day: number): DayOffsets {
  let days = dayCache.get(timeZone);
  if (!days) dayCache.set(timeZone, (days = new Map()));
  let entry = days.get(day);
  if (entry) return entry;
  const from = day * DAY_MS;
  const start = offsetByIntl(timeZone, from);
  const after = offsetByIntl(timeZone, from + DAY_MS);
  let changeAt: number | null = null;
  if (start !== after) {
    // The first second showing the new offset (no zone changes its clocks twice in a day).
    let low = from;
    let high = from + DAY_MS;
    while (high - low > 1000) {
      const middle = low + Math.floor((high - low) / 2000) * 1000;
      if (offsetByIntl(timeZone, middle) === start) low = middle;
      else high = middle;
    }
    changeAt = high;
  }
  entry = { start, changeAt, after };
  if (days.size >= DAY_CACHE_LIMIT) days.clear();
  days.set(day, entry);
  return entry;
}

/** The zone's UTC offset at `at`, in milliseconds. */
export function offsetAt(timeZone: string, at: number): number {
  const day = dayOffsets(timeZone, Math.floor(at / DAY_MS));
  return day.changeAt !== null && at >= day.changeAt ? day.after : day.start;
}

export function localHourAt(timeZone: string, at: number): LocalHour {
  const local = at + offsetAt(timeZone, at);
  const days = Math.floor(local / DAY_MS);
  // 1970-01-01 was a Thursday (ISO 4).
  const weekday = ((((days + 3) % 7) + 7) % 7) + 1;
  const msIntoDay = local - days * DAY_MS;
  const hour = Math.floor(msIntoDay / 3_600_000);
  // Zones move their clocks on whole hours (or half hours, keeping minutes), so the local hour
  // ends when the minutes and seconds shown come round to zero.
  const msIntoHour = msIntoDay - hour * 3_600_000;
  return { weekday, hour, nextHourAt: at - msIntoHour + 3_600_000 };
}

/** Local weekday and hour straight from Intl, without the day cache: what tests check localHourAt against. */
export function localHourByIntl(timeZone: string, at: number): { weekday: number; hour: number; minute: number; second: number } {
  let weekday = 0;
  let hour = 0;
  let minute = 0;
  let second = 0;
  for (const part of formatter(timeZone).formatToParts(at)) {
    if (part.type === 'weekday') weekday = WEEKDAYS[part.value] ?? 0;
    else if (part.type === 'hour') hour = Number(part.value);
    else if (part.type === 'minute') minute = Number(part.value);
    else if (part.type === 'second') second = Number(part.value);
  }
  return { weekday, hour, minute, second };
}

/** Whether two instants show the same local time of day: the zone's offset is the same at both. */
export function sameLocalTime(timeZone: string, a: number, b: number): boolean {
  const first = localHourAt(timeZone, a);
  const second = localHourAt(timeZone, b);
  return first.hour === second.hour && first.nextHourAt - a === second.nextHourAt - b;
}
