import type { FastifyInstance, LightMyRequestResponse } from 'fastify';

/**
 * A browser without a browser, over app.inject(): it keeps cookies and sends each form back with
 * the CSRF token of the last page it read, as a browser does.
 */
export class WebClient {
  readonly cookies = new Map<string, string>();
  private csrf = '';

  constructor(private readonly app: FastifyInstance) {}

  private remember(response: LightMyRequestResponse): LightMyRequestResponse {
    for (const c of response.cookies) {
      if (c.value === '' || (c.expires && c.expires.getTime() < Date.now())) this.cookies.delete(c.name);
      else this.cookies.set(c.name, c.value);
    }
    const token = /name="_csrf" value="([^"]+)"/.exec(response.body);
    if (token) this.csrf = token[1]!;
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
    for (const [name, value] of Object.entries(form)) for (const one of Array.isArray(value) ? value : [value]) params.append(name, one);
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
