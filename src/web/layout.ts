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
  label: string;
  type?: string;
  value?: string | undefined;
  error?: string | undefined;
  hint?: string;
  required?: boolean;
  autocomplete?: string;
  inputmode?: string;
}): SafeHtml {
  const id = `f-${options.name.replaceAll('.', '-')}`;
  const describedBy = [options.hint ? `${id}-hint` : '', options.error ? `${id}-error` : ''].filter(Boolean).join(' ');
  return html`<div class="field${options.error ? ' has-error' : ''}">
<label for="${id}">${options.label}</label>
${options.hint ? html`<span class="hint" id="${id}-hint">${options.hint}</span>` : ''}
${options.error ? html`<span class="error" id="${id}-error">${options.error}</span>` : ''}
<input id="${id}" name="${options.name}" type="${options.type ?? 'text'}"${options.value !== undefined ? html` value="${options.value}"` : ''}${options.required ? html` required` : ''}${options.autocomplete ? html` autocomplete="${options.autocomplete}"` : ''}${options.inputmode ? html` inputmode="${options.inputmode}"` : ''}${describedBy ? html` aria-describedby="${describedBy}"` : ''}${options.error ? html` aria-invalid="true"` : ''}>
</div>`;
}

/** The CSRF token every form posts back (@fastify/csrf-protection reads `_csrf` from the body). */
export const csrfInput = (token: string) => html`<input type="hidden" name="_csrf" value="${token}">`;
