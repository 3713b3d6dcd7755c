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
  const value = Number(trimmed);
  return Number.isFinite(value) ? value : trimmed;
}

/** A text field: blank is "not given". */
export const optionalText = (text: string | undefined) => (text?.trim() ? text.trim() : undefined);

/** One issue in words that name the field ("Outstanding limit must be at most 100000.00"). */
function messageOf(issue: z.core.$ZodIssue, label: string): string {
  const unit = (issue as { origin?: string }).origin === 'string' ? ' characters' : '';
  switch (issue.code) {
    case 'invalid_type':
      return issue.message.endsWith('received undefined') ? `Enter ${label.toLowerCase()}` : `${label} must be a number`;
    case 'too_small':
      if ((issue as { origin?: string }).origin === 'array') return `Choose ${label.toLowerCase()}`;
      if (unit && Number(issue.minimum) === 1) return `Enter ${label.toLowerCase()}`;
      return `${label} must be at least ${String(issue.minimum)}${unit}`;
    case 'too_big':
      return `${label} must be at most ${String(issue.maximum)}${unit}`;
    case 'invalid_format':
      return issue.format === 'email' ? `${label} must be an e-mail address, like name@example.com` : `${label} ${issue.message}`;
    default:
      return `${label} ${issue.message}`;
  }
}

/**
 * The schema's issues as one message per field (the first), keyed by the field's name in the
 * form (its path, dotted: "card.number").
 */
export function fieldErrors(error: z.ZodError, labels: Record<string, string>): Record<string, string> {
  const errors: Record<string, string> = {};
  for (const issue of error.issues) {
    const name = issue.path.join('.');
    errors[name] ??= messageOf(issue, labels[name] ?? 'This field');
  }
  return errors;
}
