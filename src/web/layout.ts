import { html, type SafeHtml } from './html.js';

export interface PageOptions {
  title: string;
  /** The scripts this page loads, by asset name (each under the 100 KB budget on its own). */
  scripts?: string[];
  /** Links shown in the header: the portal's or the console's. */
  nav: SafeHtml;
  /** A notice shown above the page (after a redirect), with its kind. */
  flash?: { kind: 'ok' | 'error'; text: string } | null | undefined;
}

/** Every page's frame: one stylesheet, its own scripts (deferred modules), no inline script (the CSP forbids it). */
export function page(options: PageOptions, body: SafeHtml): SafeHtml {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${options.title} · tollgate</title>
<link rel="stylesheet" href="/assets/site.css">
<link rel="icon" href="/assets/favicon.svg" type="image/svg+xml">
${(options.scripts ?? []).map((name) => html`<script type="module" src="/assets/${name}"></script>`)}
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top"><a class="brand" href="/">tollgate</a><nav aria-label="Main">${options.nav}</nav></header>
<main id="main">
${options.flash ? html`<p class="flash ${options.flash.kind}" role="${options.flash.kind === 'error' ? 'alert' : 'status'}">${options.flash.text}</p>` : ''}
<h1>${options.title}</h1>
${body}
</main>
</body>
</html>`;
}

/** A form field with its label, its hint and its error next to it (GOV.UK's pattern); the error names the field for screen readers. */
export function field(options: {
  name: string;
  /** When one page has several forms with a field of this name. */
  id?: string;
  label: string;
  type?: string;
  value?: string | undefined;
  error?: string | undefined;
  hint?: string;
  required?: boolean;
  autocomplete?: string;
  inputmode?: string;
}): SafeHtml {
  const id = options.id ?? fieldId(options.name);
  const describedBy = [options.hint ? `${id}-hint` : '', options.error ? `${id}-error` : ''].filter(Boolean).join(' ');
  return html`<div class="field${options.error ? ' has-error' : ''}">
<label for="${id}">${options.label}</label>
${options.hint ? html`<span class="hint" id="${id}-hint">${options.hint}</span>` : ''}
${options.error ? html`<span class="error" id="${id}-error">${options.error}</span>` : ''}
<input id="${id}" name="${options.name}" type="${options.type ?? 'text'}"${options.value !== undefined ? html` value="${options.value}"` : ''}${options.required ? html` required` : ''}${options.autocomplete ? html` autocomplete="${options.autocomplete}"` : ''}${options.inputmode ? html` inputmode="${options.inputmode}"` : ''}${describedBy ? html` aria-describedby="${describedBy}"` : ''}${options.error ? html` aria-invalid="true"` : ''}>
</div>`;
}

/** The id of a field's input, from its name: the error summary links to it. */
export const fieldId = (name: string) => `f-${name.replaceAll('.', '-')}`;

/** A choice of a few options, labelled, with its error next to it. */
export function selectField(options: { name: string; id?: string; label: string; options: { value: string; text: string }[]; value?: string | undefined; error?: string | undefined; hint?: string }): SafeHtml {
  const id = options.id ?? fieldId(options.name);
  const describedBy = [options.hint ? `${id}-hint` : '', options.error ? `${id}-error` : ''].filter(Boolean).join(' ');
  return html`<div class="field${options.error ? ' has-error' : ''}">
<label for="${id}">${options.label}</label>
${options.hint ? html`<span class="hint" id="${id}-hint">${options.hint}</span>` : ''}
${options.error ? html`<span class="error" id="${id}-error">${options.error}</span>` : ''}
<select id="${id}" name="${options.name}"${describedBy ? html` aria-describedby="${describedBy}"` : ''}${options.error ? html` aria-invalid="true"` : ''}>${options.options.map(
    (o) => html`<option value="${o.value}"${o.value === options.value ? html` selected` : ''}>${o.text}</option>`,
  )}</select>
</div>`;
}

/** A group of checkboxes under one name, in a fieldset whose legend names the group; its error is the group's. */
export function checkboxes(options: { name: string; legend: string; options: { value: string; text: string }[]; checked: readonly string[]; error?: string | undefined; hint?: string }): SafeHtml {
  const id = fieldId(options.name);
  return html`<fieldset class="checkboxes${options.error ? ' has-error' : ''}" id="${id}"><legend>${options.legend}</legend>
${options.hint ? html`<span class="hint">${options.hint}</span>` : ''}
${options.error ? html`<span class="error">${options.error}</span>` : ''}
${options.options.map(
  (o) => html`<label><input type="checkbox" name="${options.name}" value="${o.value}"${options.checked.includes(o.value) ? html` checked` : ''}> ${o.text}</label> `,
)}</fieldset>`;
}

/** The errors of a form, above it (GOV.UK's error summary): each links to its field. */
export function errorSummary(errors: Record<string, string>, formError: string | null): SafeHtml {
  const entries = Object.entries(errors);
  if (entries.length === 0 && !formError) return html``;
  return html`<div class="error-summary" role="alert" tabindex="-1">
<h2>There is a problem</h2>
${formError ? html`<p>${formError}</p>` : ''}
${entries.length > 0 ? html`<ul>${entries.map(([name, message]) => html`<li><a href="#${fieldId(name)}">${message}</a></li>`)}</ul>` : ''}
</div>`;
}

/** The CSRF token every form posts back (@fastify/csrf-protection reads `_csrf` from the body). */
export const csrfInput = (token: string) => html`<input type="hidden" name="_csrf" value="${token}">`;
