import type { z } from 'zod';

/** A form's fields as the browser sent them (@fastify/formbody): one string per name, anything else dropped. */
export function formFields(body: unknown): Record<string, string> {
  const fields: Record<string, string> = {};
  if (typeof body !== 'object' || body === null) return fields;
  for (const [name, value] of Object.entries(body)) {
    const first = Array.isArray(value) ? value[0] : value;
    if (typeof first === 'string') fields[name] = first;
  }
  return fields;
}

/** Every value a form sent under one name (a group of checkboxes), anything but strings dropped. */
export function formValues(body: unknown, name: string): string[] {
  if (typeof body !== 'object' || body === null) return [];
  const value = (body as Record<string, unknown>)[name];
  return (Array.isArray(value) ? value : [value]).filter((v): v is string => typeof v === 'string').slice(0, 50);
}

/** A number field: blank is "not given" (the schema says whether that is allowed); text that is no number stays text, so the schema names the field. */
export function numberField(text: string | undefined): number | string | undefined {
  const trimmed = text?.trim() ?? '';
  if (trimmed === '') return undefined;
  // Decimal notation only, as JSON writes numbers: Number() would also read 0x10, 0b11 and 0o7.
  if (!DECIMAL_NUMBER.test(trimmed)) return trimmed;
  const value = Number(trimmed);
  return Number.isFinite(value) ? value : trimmed;
}

const DECIMAL_NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

/** The message a page's `?done=` names, from its own table only: never an inherited name like `constructor`. */
export function doneMessage<T extends Readonly<Record<string, string>>>(messages: T, done: string | undefined): string | null {
  return done !== undefined && Object.hasOwn(messages, done) ? messages[done]! : null;
}

/** A text field: blank is "not given". */
export const optionalText = (text: string | undefined) => (text?.trim() ? text.trim() : undefined);

/**
 * A bound as a person reads it, to three decimals, rounded so the bound shown is itself allowed:
 * at least 1/60 of a minute reads "at least 0.017", at most 2/3 reads "at most 0.666".
 */
const readable = (bound: unknown, round: (n: number) => number) =>
  typeof bound === 'number' && !Number.isInteger(bound) ? String(round(bound * 1000) / 1000) : String(bound);

/** "Estimated storage (GB)" → "estimated storage (GB)"; "CVC" stays "CVC": only a first word in lower case after its capital. */
const lowerFirst = (label: string) => (/^[A-Z][a-z]/.test(label) ? label.charAt(0).toLowerCase() + label.slice(1) : label);

/** One issue in words that name the field ("Outstanding limit must be at most 100000.00"). */
function messageOf(issue: z.core.$ZodIssue, label: string): string {
  const unit = (issue as { origin?: string }).origin === 'string' ? ' characters' : '';
  switch (issue.code) {
    case 'invalid_type':
      if (issue.message.endsWith('received undefined')) return label === 'This field' ? 'Fill in every field of the form' : `Enter ${lowerFirst(label)}`;
      return issue.expected === 'int' ? `${label} must be a whole number` : `${label} must be a number`;
    case 'too_small':
      if ((issue as { origin?: string }).origin === 'array') return `Choose ${lowerFirst(label)}`;
      if (unit && Number(issue.minimum) === 1) return `Enter ${lowerFirst(label)}`;
      return `${label} must be at least ${readable(issue.minimum, Math.ceil)}${unit}`;
    case 'too_big':
      return `${label} must be at most ${readable(issue.maximum, Math.floor)}${unit}`;
    case 'invalid_format':
      if (issue.format === 'datetime') return `${label} must be a date and time, like 2026-12-01T09:30`;
      if (issue.format === 'uuid') return `${label} is not one tollgate knows`;
      return issue.format === 'email' ? `${label} must be an e-mail address, like name@example.com` : `${label} ${issue.message}`;
    case 'invalid_value':
      return `${label} must be one of: ${issue.values.map(String).join(', ')}`;
    default:
      return `${label} ${issue.message}`;
  }
}

/**
 * The schema's issues as one message per field (the first), keyed by the field's name in the
 * form (its path, dotted: "card.number").
 */
export function fieldErrors(error: z.ZodError, labels: Record<string, string>): Record<string, string> {
  const chosen = new Map<string, z.core.$ZodIssue>();
  for (const issue of error.issues) {
    const name = issue.path.join('.');
    const earlier = chosen.get(name);
    if (!earlier || tighter(issue, earlier)) chosen.set(name, issue);
  }
  return Object.fromEntries([...chosen].map(([name, issue]) => [name, messageOf(issue, labels[name] ?? 'This field')]));
}

/**
 * Of two bounds a value broke, the one the field itself sets: a year of twenty digits breaks both
 * the whole numbers' largest (9007199254740991) and the field's 2100, and the form says 2100.
 */
function tighter(issue: z.core.$ZodIssue, than: z.core.$ZodIssue): boolean {
  if (issue.code === 'too_big' && than.code === 'too_big') return Number(issue.maximum) < Number(than.maximum);
  if (issue.code === 'too_small' && than.code === 'too_small') return Number(issue.minimum) > Number(than.minimum);
  return false;
}
