import type { AnyStateMachine } from 'xstate';
import { html, type SafeHtml } from '../html.js';

/** The parts of an xstate StateNode the drawing reads (xstate v5's public fields). */
interface NodeLike {
  key: string;
  path: string[];
  type: string;
  tags: string[];
  states: Record<string, NodeLike>;
  on: Record<string, { target?: readonly NodeLike[] | undefined; guard?: unknown }[]>;
  always?: { target?: readonly NodeLike[] | undefined; guard?: unknown }[] | undefined;
  after: { eventType: string; target?: readonly NodeLike[] | undefined; guard?: unknown }[];
  invoke: { src: unknown; id: string }[];
}

/** "xstate.done.actor.authorize" → "authorize done": the events the machine makes for itself, in words. */
function eventLabel(eventType: string): string {
  const done = /^xstate\.done\.actor\.(.+)$/.exec(eventType);
  if (done) return `${done[1]} done`;
  const error = /^xstate\.error\.actor\.(.+)$/.exec(eventType);
  if (error) return `${error[1]} failed`;
  if (eventType.startsWith('xstate.after.')) return 'after its delay';
  return eventType;
}

const targetsOf = (targets: readonly NodeLike[] | undefined) => (targets && targets.length > 0 ? targets.map((t) => t.path.join('.')).join(', ') : '(stays)');

function transitionsOf(node: NodeLike): SafeHtml[] {
  const lines: SafeHtml[] = [];
  for (const [eventType, transitions] of Object.entries(node.on)) {
    for (const t of transitions) lines.push(html`<li>${eventLabel(eventType)}${t.guard ? ' (if allowed)' : ''} → ${targetsOf(t.target)}</li>`);
  }
  for (const t of node.always ?? []) lines.push(html`<li>at once${t.guard ? ' (if allowed)' : ''} → ${targetsOf(t.target)}</li>`);
  for (const t of node.after) lines.push(html`<li>${eventLabel(t.eventType)} → ${targetsOf(t.target)}</li>`);
  return lines;
}

function box(node: NodeLike, current: string, depth: number): SafeHtml {
  const path = node.path.join('.');
  const onPath = current === path || current.startsWith(`${path}.`);
  const isCurrent = current === path;
  const heading = depth <= 1 ? 'h3' : 'h4';
  const title = html`${node.key}${node.type === 'final' ? html` <span class="final">(final)</span>` : ''}${node.tags.map((t) => html`<span class="tag">${t}</span>`)}`;
  const lines = transitionsOf(node);
  const children = Object.values(node.states);
  return html`<section class="state-box${onPath ? ' on-path' : ''}${isCurrent ? ' current' : ''}" data-path="${path}" aria-label="state ${path}"${isCurrent ? html` aria-current="true"` : ''}>
${heading === 'h3' ? html`<h3>${title}</h3>` : html`<h4>${title}</h4>`}
${node.invoke.length > 0 ? html`<p class="hint">calls ${node.invoke.map((i) => (typeof i.src === 'string' ? i.src : i.id)).join(', ')}</p>` : ''}
${lines.length > 0 ? html`<ul class="transitions">${lines}</ul>` : ''}
${children.length > 0 ? html`<div class="children">${children.map((child) => box(child, current, depth + 1))}</div>` : ''}
</section>`;
}

/**
 * The machine drawn from its own definition (machine.root), so the picture cannot drift from
 * the code: nested boxes for nested states, each with its tags, the actors it calls and its
 * transitions; the boxes on the current path are marked, the current one with aria-current.
 * The console's script moves the marks when the session moves (data-path).
 */
export function drawMachine(machine: AnyStateMachine, currentPath: string): SafeHtml {
  const root = machine.root as unknown as NodeLike;
  return html`<div class="machine" data-machine="${root.key}" data-current="${currentPath}">
${Object.values(root.states).map((node) => box(node, currentPath, 1))}
</div>`;
}

