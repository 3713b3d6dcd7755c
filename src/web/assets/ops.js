// The console's only script: it shows what the server pushes (server-sent events) and computes
// nothing. Occupancy on the servers page; the state, stuck reason, timeline and the machine
// drawing's highlight on a session's page.

const setText = (root, name, text) => {
  for (const el of root.querySelectorAll(`[data-field="${name}"]`)) {
    if (el.textContent !== text) el.textContent = text;
  }
};

function showGate(kind, gate) {
  const cell = document.querySelector(`[data-gate="${kind}:${gate.id}"]`);
  const queue = document.querySelector(`[data-gate-queue="${kind}:${gate.id}"]`);
  if (cell) {
    setText(cell, 'activeUsers', String(gate.activeUsers));
    setText(cell, 'maxUsers', String(gate.maxUsers));
    const meter = cell.querySelector('meter');
    meter.max = Math.max(1, gate.maxUsers);
    meter.value = gate.activeUsers;
  }
  if (queue) {
    setText(queue, 'queued', String(gate.queued));
    setText(queue, 'wait', gate.oldestWaitSeconds === null ? '' : `, oldest ${Math.round(gate.oldestWaitSeconds)} s`);
  }
}

function liveOccupancy() {
  const source = new EventSource('/ops/occupancy/events');
  source.onmessage = (message) => {
    for (const server of JSON.parse(message.data).servers) {
      showGate('server', server);
      for (const service of server.services) showGate('service', service);
    }
  };
}

function highlight(machine, path) {
  machine.dataset.current = path;
  for (const box of machine.querySelectorAll('[data-path]')) {
    const own = box.dataset.path;
    const current = own === path;
    box.classList.toggle('current', current);
    box.classList.toggle('on-path', current || path.startsWith(`${own}.`));
    if (current) box.setAttribute('aria-current', 'true');
    else box.removeAttribute('aria-current');
  }
}

function liveSession(section) {
  const machine = section.querySelector('.machine');
  const source = new EventSource(section.dataset.live);
  source.onmessage = (message) => {
    const live = JSON.parse(message.data);
    setText(section, 'path', live.path);
    setText(section, 'stuck', live.stuck);
    setText(section, 'accrued', live.accrued);
    const timeline = section.querySelector('[data-field="timeline"]');
    // The timeline is rendered by the server (escaped there); it replaces the list as a whole.
    if (timeline && timeline.outerHTML !== live.timeline) timeline.outerHTML = live.timeline;
    if (machine) highlight(machine, live.path);
  };
}

if (document.querySelector('[data-gate]')) liveOccupancy();
const session = document.querySelector('section.ops-session[data-live]');
if (session) liveSession(session);
