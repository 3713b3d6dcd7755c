import { z } from 'zod';
import type { Pricing } from '../../catalogue/catalogue.js';
import { positiveAmount, tariffInput, type Limits } from '../../http/schemas.js';
import type { TariffView } from '../../sessions/session-view.js';
import { fieldErrors, formFields, formValues, numberField, optionalText } from '../forms.js';

/** The tariff form as typed: one string per field, the checked days per rule row. */
export interface TariffFormValues {
  fields: Record<string, string | undefined>;
  days: string[][];
}

/** Rows for new rules below the existing ones: a form that works without script cannot add rows. */
export const SPARE_RULE_ROWS = 2;
/** The most rule rows a form may send (the API's own bound on rules, DESIGN rule 16). */
export const MAX_RULE_ROWS = 50;

export const ruleField = (row: number, part: 'days' | 'fromHour' | 'toHour' | 'pricePerMinute') => `rules.${row}.${part}`;

/** The service's tariff as the form shows it first. */
export function tariffFormValues(tariff: TariffView): TariffFormValues {
  const fields: Record<string, string> = {
    pricePerMinute: tariff.pricePerMinute,
    timeZone: tariff.timeZone,
    'billing.firstPeriodSeconds': String(tariff.billing.firstPeriodSeconds),
    'billing.incrementSeconds': String(tariff.billing.incrementSeconds),
    'billing.minimumCharge': tariff.billing.minimumCharge,
    'perUse.unit': tariff.perUse?.unit ?? '',
    'perUse.price': tariff.perUse?.price ?? '',
  };
  tariff.rules.forEach((rule, row) => {
    fields[ruleField(row, 'fromHour')] = String(rule.fromHour);
    fields[ruleField(row, 'toHour')] = String(rule.toHour);
    fields[ruleField(row, 'pricePerMinute')] = rule.pricePerMinute;
  });
  return { fields, days: tariff.rules.map((rule) => rule.days.map(String)) };
}

const RULE_PARTS = new Set(['days', 'fromHour', 'toHour', 'pricePerMinute']);

/**
 * How many rule rows the form had (it sends each row's fields, blank or not), and whether it sent
 * a rule field no form of this page has (a row past the last, a part it does not know), which is
 * refused rather than dropped.
 */
function rowsSent(fields: Record<string, string>): { rows: number; foreign: boolean } {
  let rows = 0;
  let foreign = false;
  for (const name of Object.keys(fields)) {
    if (!name.startsWith('rules.')) continue;
    const match = /^rules\.(0|[1-9]\d{0,5})\.([A-Za-z]+)$/.exec(name);
    if (!match || Number(match[1]) >= MAX_RULE_ROWS || !RULE_PARTS.has(match[2]!)) foreign = true;
    else rows = Math.max(rows, Number(match[1]) + 1);
  }
  return { rows, foreign };
}

export type TariffFormResult =
  | { ok: true; values: TariffFormValues; pricePerMinuteMicros: bigint; pricing: Pricing }
  | { ok: false; values: TariffFormValues; errors: Record<string, string> };

/**
 * Reads the console's tariff form into the operator API's own tariff input (tariffInput, the same
 * zod rules as PATCH /v1/services/:id): a rule row left blank is no rule; each issue comes back
 * under the name of the field it is about, for the form to show next to that field.
 */
export function readTariffForm(body: unknown, limits: Limits): TariffFormResult {
  const fields = formFields(body);
  const { rows, foreign } = rowsSent(fields);
  const days = Array.from({ length: rows }, (_, row) => formValues(body, ruleField(row, 'days')));
  const values: TariffFormValues = { fields, days };
  // Which form row each rule came from, so an issue about rules[k] lands on the row it was typed in.
  const rowOf: number[] = [];
  const rules = [];
  for (let row = 0; row < rows; row++) {
    const parts = [fields[ruleField(row, 'fromHour')], fields[ruleField(row, 'toHour')], fields[ruleField(row, 'pricePerMinute')]];
    if (days[row]!.length === 0 && parts.every((part) => !part?.trim())) continue;
    rowOf.push(row);
    rules.push({
      days: days[row]!.map((day) => numberField(day)),
      fromHour: numberField(parts[0]),
      toHour: numberField(parts[1]),
      pricePerMinute: optionalText(parts[2]),
    });
  }
  const unit = optionalText(fields['perUse.unit']);
  const perUsePrice = optionalText(fields['perUse.price']);
  const candidate = {
    pricePerMinute: optionalText(fields.pricePerMinute),
    tariff: {
      timeZone: optionalText(fields.timeZone),
      rules,
      billing: {
        firstPeriodSeconds: numberField(fields['billing.firstPeriodSeconds']),
        incrementSeconds: numberField(fields['billing.incrementSeconds']),
        minimumCharge: optionalText(fields['billing.minimumCharge']) ?? '0',
      },
      perUse: unit === undefined ? null : { unit, price: perUsePrice },
    },
  };
  const schema = z.object({ pricePerMinute: positiveAmount(6, limits.maxPricePerMinuteMicros), tariff: tariffInput(limits) });
  const parsed = schema.safeParse(candidate);
  const errors: Record<string, string> = {};
  if (unit === undefined && perUsePrice !== undefined) errors['perUse.unit'] = 'Choose what counts as a use, or clear the price per use';
  if (foreign) errors.rules = `A tariff has at most ${MAX_RULE_ROWS} rules, in the rows this page shows`;
  if (parsed.success && Object.keys(errors).length === 0) return { ok: true, values, pricePerMinuteMicros: parsed.data.pricePerMinute, pricing: parsed.data.tariff };
  if (!parsed.success) {
    // The schema's paths (tariff.rules.3.toHour) as the form's names (rules.5.toHour).
    const issues = parsed.error.issues.map((issue) => {
      const [first, second, index, part] = issue.path.map(String);
      if (first === 'tariff' && second === 'rules' && index !== undefined) return { ...issue, path: ['rules', String(rowOf[Number(index)]), ...(part ? [part] : [])] };
      return first === 'tariff' ? { ...issue, path: issue.path.slice(1) } : issue;
    });
    Object.assign(errors, fieldErrors(new z.ZodError(issues), labels(rows)));
  }
  return { ok: false, values, errors };
}

/** Every field's label, as the page shows it (errors name the field in the same words). */
export function labels(rows: number): Record<string, string> {
  const names: Record<string, string> = {
    pricePerMinute: 'Default price per minute',
    timeZone: 'Time zone',
    'billing.firstPeriodSeconds': 'First period (seconds)',
    'billing.incrementSeconds': 'Increment (seconds)',
    'billing.minimumCharge': 'Minimum charge',
    'perUse.unit': 'What counts as a use',
    'perUse.price': 'Price per use',
  };
  for (let row = 0; row < rows; row++) {
    const n = row + 1;
    names[ruleField(row, 'days')] = `Days of rule ${n}`;
    names[ruleField(row, 'fromHour')] = `From hour of rule ${n}`;
    names[ruleField(row, 'toHour')] = `To hour of rule ${n}`;
    names[ruleField(row, 'pricePerMinute')] = `Price per minute of rule ${n}`;
  }
  return names;
}
