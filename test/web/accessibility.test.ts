import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { createService, signUp } from '../helpers/customers.js';
import { createOperator } from '../helpers/operators.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';
import { WebClient } from '../helpers/web-client.js';

let tollgate: TestTollgate;
let serviceId: string;
let sessionId: string;
const clock = new ManualClock(Date.UTC(2026, 10, 30, 9));
const PASSWORD = 'correct horse battery staple';

beforeAll(async () => {
  tollgate = await startTestTollgate({ clock });
  await createOperator(tollgate.app, tollgate.adminToken, { name: 'a11y-admin', role: 'admin', password: PASSWORD });
  ({ serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '1.00', maxUsers: 1 }));
});
afterAll(async () => {
  await tollgate?.stop();
});

/** Every visible form control has an id and a <label for> naming it; every button has text. */
function expectLabelled(body: string, where: string) {
  const controls = [...body.matchAll(/<(input|select|textarea)\b([^>]*)>/g)].filter(([, , attrs]) => !/type="hidden"/.test(attrs!));
  for (const [tag, , attrs] of controls) {
    const id = /\bid="([^"]+)"/.exec(attrs!)?.[1];
    expect(id, `${where}: ${tag}`).toBeTruthy();
    expect(body, `${where}: a label for #${id}`).toMatch(new RegExp(`<label for="${id}">[^<]*\\S`));
  }
  for (const [, text] of body.matchAll(/<button\b[^>]*>([^<]*)<\/button>/g)) expect(text!.trim(), where).not.toBe('');
}

describe('the pages are accessible', () => {
  it('labels every field and names every button with the words the issue uses', async () => {
    const web = new WebClient(tollgate.app);
    const signUpPage = (await web.get('/signup')).body;
    expectLabelled(signUpPage, '/signup');
    for (const name of ['Card number', 'Outstanding limit', 'Full name', 'E-mail', 'Password', 'Expiry month', 'Expiry year', 'CVC', 'Estimated storage (GB)', 'Estimated processing (hours)']) {
      expect(signUpPage).toContain(`>${name}</label>`);
    }
    expect(signUpPage).toContain('<button type="submit">Sign up</button>');
    expect((await web.get('/login')).body).toContain('<button type="submit">Log in</button>');

    const customer = await signUp(tollgate.app);
    await web.get('/login');
    await web.post('/login', { email: customer.account.email, password: 'analytical engine' });
    const catalogue = (await web.get('/')).body;
    expect(catalogue).toMatch(/>Open session<span class="visually-hidden"> on /);
    const open = (await web.get(`/services/${serviceId}/open`)).body;
    expectLabelled(open, 'open');
    expect(open).toContain('<button type="submit">Open session</button>');
    const opened = await web.post(`/services/${serviceId}/open`, { maxMinutes: '5' });
    sessionId = String(opened.headers.location).split('/').pop()!;
    const session = (await web.get(`/sessions/${sessionId}`)).body;
    expectLabelled(session, 'session');
    expect(session).toContain('<button type="submit">Extend</button>');
    expect(session).toContain('>Log off</button>');
    expectLabelled((await web.get('/account')).body, 'account');
    for (const name of ['Outstanding limit', 'Card number', 'Current password', 'New password']) expect((await web.get('/account')).body).toContain(`>${name}</label>`);
    expect((await web.get('/account')).body).toContain('>Close account</button>');
    expectLabelled((await web.get('/quote')).body, '/quote');
    const quote = await web.post('/quote', { serviceId, maxMinutes: '5' });
    const quotePage = (await web.get(String(quote.headers.location))).body;
    expectLabelled(quotePage, 'quote');
    expect(quotePage).toContain('>Open session with this quote</button>');

    const ops = new WebClient(tollgate.app);
    expectLabelled((await ops.get('/ops/login')).body, '/ops/login');
    await ops.post('/ops/login', { name: 'a11y-admin', password: PASSWORD });
    const pages = ['/ops', '/ops/sessions', `/ops/sessions/${sessionId}`, '/ops/log', '/ops/charts', `/ops/services/${serviceId}/tariff`, '/ops/accounts', `/ops/accounts/${customer.account.id}`, '/ops/webhooks'];
    for (const url of pages) {
      const page = await ops.get(url);
      expect(page.statusCode, url).toBe(200);
      expectLabelled(page.body, url);
    }
    expect((await ops.get(`/ops/sessions/${sessionId}`)).body).toMatch(/<section class="state-box on-path current" data-path="active.running" aria-label="state active.running" aria-current="true">/);
  });

  it('shows the queue when the service is full, and a refusal at capacity with its code', async () => {
    const other = await signUp(tollgate.app);
    const web = new WebClient(tollgate.app);
    await web.get('/login');
    await web.post('/login', { email: other.account.email, password: 'analytical engine' });
    const open = (await web.get(`/services/${serviceId}/open`)).body;
    expect(open).toContain('The service is full: 0 waiting');
    expect(open).toMatch(/id="f-waitSeconds"[^>]* value="30"|value="30"[^>]*id="f-waitSeconds"/);
    const refused = await web.post(`/services/${serviceId}/open`, { waitSeconds: '0' });
    expect(refused.statusCode).toBe(409);
    expect(refused.body).toContain('(SERVICE_AT_CAPACITY)');
    const bad = await web.post(`/services/${serviceId}/open`, { maxMinutes: 'ten', maxCharge: '1.234' });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('id="f-maxMinutes-error">Max minutes must be a number');
    expect(bad.body).toContain('id="f-maxCharge-error">Max charge must be a decimal string with at most 2 decimals');
    expect(bad.body).toContain('value="ten"');
    // Bounds as a person reads them: a second is 0.017 of a minute.
    const negative = await web.post(`/services/${serviceId}/open`, { maxMinutes: '-5', maxCharge: '' });
    expect(negative.body).toContain('id="f-maxMinutes-error">Max minutes must be at least 0.017<');
  });
});
