import type { FastifyInstance, LightMyRequestResponse } from 'fastify';

/**
 * A browser without a browser, over app.inject(): it keeps cookies and sends each form back with
 * the CSRF token of the last page it read and the hidden fields of that page's form for the same
 * address (a form's own id, say), as a browser does.
 */
export class WebClient {
  readonly cookies = new Map<string, string>();
  private csrf = '';
  /** The last page's forms: their hidden fields (but the CSRF token) by the address they post to. */
  private hidden = new Map<string, Record<string, string>>();

  constructor(private readonly app: FastifyInstance) {}

  private remember(response: LightMyRequestResponse): LightMyRequestResponse {
    for (const c of response.cookies) {
      if (c.value === '' || (c.expires && c.expires.getTime() < Date.now())) this.cookies.delete(c.name);
      else this.cookies.set(c.name, c.value);
    }
    const token = /name="_csrf" value="([^"]+)"/.exec(response.body);
    if (token) this.csrf = token[1]!;
    if (response.headers['content-type']?.toString().startsWith('text/html')) {
      this.hidden = new Map();
      for (const [, action, inside] of response.body.matchAll(/<form[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/g)) {
        const fields: Record<string, string> = {};
        for (const [, name, value] of inside!.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) if (name !== '_csrf') fields[name!] = value!;
        this.hidden.set(action!, fields);
      }
    }
    return response;
  }

  private get cookieHeader() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  async get(url: string): Promise<LightMyRequestResponse> {
    return this.remember(await this.app.inject({ method: 'GET', url, headers: { cookie: this.cookieHeader } }));
  }

  /** A list is sent as a browser sends checked boxes of one name: the name once per value. */
  async post(url: string, form: Record<string, string | string[]>, options: { csrf?: boolean } = {}): Promise<LightMyRequestResponse> {
    const params = new URLSearchParams(options.csrf === false ? {} : { _csrf: this.csrf });
    for (const [name, value] of Object.entries({ ...this.hidden.get(url), ...form })) for (const one of Array.isArray(value) ? value : [value]) params.append(name, one);
    const body = params.toString();
    return this.remember(
      await this.app.inject({
        method: 'POST',
        url,
        payload: body,
        headers: { cookie: this.cookieHeader, 'content-type': 'application/x-www-form-urlencoded' },
      }),
    );
  }
}
