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

export function localHourAt(timeZone: string, at: number): LocalHour {
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
  // Zones move their clocks on whole hours (or half hours, keeping minutes), so the local hour
  // ends when the minutes and seconds shown come round to zero.
  const msIntoHour = (minute * 60 + second) * 1000 + (((at % 1000) + 1000) % 1000);
  return { weekday, hour, nextHourAt: at - msIntoHour + 3_600_000 };
}

/** Whether two instants show the same local time of day: the zone's offset is the same at both. */
export function sameLocalTime(timeZone: string, a: number, b: number): boolean {
  const first = localHourAt(timeZone, a);
  const second = localHourAt(timeZone, b);
  return first.hour === second.hour && first.nextHourAt - a === second.nextHourAt - b;
}
