// The portal's only script. Pages work without it; with it, the numbers the server pushes
// (server-sent events) replace the ones on the page. It computes nothing itself: every value,
// the time left included, comes from the server's clock and the server's rules.

const setText = (root, name, text) => {
  for (const el of root.querySelectorAll(`[data-field="${name}"]`)) {
    if (el.textContent !== text) el.textContent = text;
  }
};

function liveCatalogue(table) {
  const source = new EventSource(table.dataset.live);
  source.onmessage = (message) => {
    for (const service of JSON.parse(message.data).services) {
      const row = table.dataset.service === service.id ? table : table.querySelector(`[data-service="${service.id}"]`);
      if (!row) continue;
      setText(row, 'seatsFree', String(service.seatsFree));
      setText(row, 'queued', String(service.queued));
      setText(row, 'waitText', service.waitSeconds === null ? '' : `, longest ${service.waitSeconds} s`);
      setText(row, 'status', service.status);
    }
  };
}

function showSession(section, live) {
  section.dataset.state = live.state;
  setText(section, 'state', live.state);
  setText(section, 'accrued', live.accrued);
  setText(section, 'maxCharge', live.maxCharge);
  setText(section, 'timeLeft', live.timeLeft);
  setText(section, 'charge', live.charge === null ? '—' : `${live.charge} ${live.currency}`);
  const warning = section.querySelector('[data-field="warning"]');
  warning.hidden = !live.warning;
  setText(section, 'warning', live.warning ?? '');
  const ended = section.querySelector('[data-field="endedText"]');
  ended.hidden = !live.ended;
  setText(section, 'endedText', live.endedText ?? '');
  const slip = section.querySelector('[data-field="slip"]');
  slip.hidden = !live.chargeSlip;
  if (live.chargeSlip) {
    setText(section, 'slip', `Charge slip ${live.chargeSlip.id}: ${live.chargeSlip.amount} ${live.currency}, authorization ${live.chargeSlip.authorizationNumber}`);
  }
  for (const el of section.querySelectorAll('[data-show="running"]')) el.hidden = !live.running;
}

function liveSession(section) {
  const source = new EventSource(section.dataset.live);
  source.onmessage = (message) => showSession(section, JSON.parse(message.data));
}

// The catalogue, or the one service of the open page (its seats and queue while the customer waits).
const catalogue = document.querySelector('[data-live="/catalogue/events"]');
if (catalogue) liveCatalogue(catalogue);
const openForm = document.querySelector('form[data-open-form]');
if (openForm) {
  openForm.addEventListener('submit', () => {
    document.querySelector('[data-field="asking"]').hidden = false;
  });
}
const session = document.querySelector('section.session[data-live]');
if (session) liveSession(session);
