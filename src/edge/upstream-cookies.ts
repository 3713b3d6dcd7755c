import type { IncomingHttpHeaders } from 'node:http';
import { TOLLGATE_COOKIES } from './credentials.js';

/**
 * A service's Set-Cookie headers, kept to the session's path on tollgate's origin: a service
 * served through the edge shares the web site's origin, so its cookies could otherwise reach
 * the portal's and the console's pages (or replace their log-in, a session fixation). A cookie
 * named as one of tollgate's is dropped; Domain is dropped (a cookie for the whole domain
 * reaches every host under it); Path is moved under the session's path (`/x` → `<session>/x`,
 * none → the session's path). Undefined when none is left.
 */
export function confinedCookies(setCookie: string | string[] | undefined, sessionPath: string): string[] | undefined {
  if (setCookie === undefined) return undefined;
  const kept: string[] = [];
  for (const cookie of Array.isArray(setCookie) ? setCookie : [setCookie]) {
    const [pair = '', ...attributes] = cookie.split(';');
    const name = pair.split('=', 1)[0]!.trim();
    if (name === '' || TOLLGATE_COOKIES.has(name)) continue;
    let path = sessionPath;
    const rest: string[] = [];
    for (const attribute of attributes) {
      const [key = '', value = ''] = attribute.split(/=(.*)/s, 2).map((part) => part.trim());
      const lower = key.toLowerCase();
      if (lower === 'domain') continue;
      if (lower === 'path') {
        if (value.startsWith('/')) path = sessionPath + value;
        continue;
      }
      if (key !== '') rest.push(attribute.trim());
    }
    kept.push([pair.trim(), `Path=${path}`, ...rest].join('; '));
  }
  return kept.length > 0 ? kept : undefined;
}

/** The answer's headers with its cookies confined (see confinedCookies); the object is the caller's to change. */
export function confineAnswerCookies<T extends IncomingHttpHeaders | Record<string, unknown>>(headers: T, sessionPath: string): T {
  const setCookie = headers['set-cookie'] as string | string[] | undefined;
  if (setCookie === undefined) return headers;
  const kept = confinedCookies(setCookie, sessionPath);
  // None left: no header at all (Node refuses a header whose value is undefined).
  if (kept === undefined) delete (headers as Record<string, unknown>)['set-cookie'];
  else (headers as Record<string, unknown>)['set-cookie'] = kept;
  return headers;
}
