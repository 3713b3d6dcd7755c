import type { IncomingMessage } from 'node:http';
import { CONSOLE_COOKIE, CSRF_COOKIE, CUSTOMER_COOKIE } from '../cookie-names.js';

/** The cookie a browser gets for `?access_token=`, scoped to its session's path under the edge. */
export const ACCESS_COOKIE = 'tollgate_access';
export const ACCESS_QUERY = 'access_token';

/**
 * Cookies that are tollgate's own on its origin (a browser sends the web site's, Path=/, with every
 * request under /edge/ too): a service never gets them, and may not set them.
 */
export const TOLLGATE_COOKIES: ReadonlySet<string> = new Set([CUSTOMER_COOKIE, CONSOLE_COOKIE, CSRF_COOKIE, ACCESS_COOKIE]);

/** Where a request's access token came from: the header, the query (once, then a cookie), or that cookie. */
export interface Credential {
  token: string;
  from: 'header' | 'query' | 'cookie';
}

function cookieValue(header: string | undefined, name: string): string | null {
  if (!header) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

/** The access token a request carries, header first; null when it carries none. */
export function credentialOf(request: IncomingMessage, search: string): Credential | null {
  const header = request.headers.authorization;
  if (header) {
    const match = /^Bearer\s+(\S{1,512})$/i.exec(header);
    return match ? { token: match[1]!, from: 'header' } : { token: '', from: 'header' };
  }
  const fromQuery = search.includes(ACCESS_QUERY) ? new URLSearchParams(search).get(ACCESS_QUERY) : null;
  if (fromQuery !== null) return { token: fromQuery, from: 'query' };
  const fromCookie = cookieValue(request.headers.cookie, ACCESS_COOKIE);
  return fromCookie === null ? null : { token: fromCookie, from: 'cookie' };
}

/**
 * The request's cookies without tollgate's own (the upstream never sees the access token, nor the
 * customer's or an operator's log-in to the web site).
 */
export function cookiesForService(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const kept = header
    .split(';')
    .map((part) => part.trim())
    .filter((part) => part !== '' && !TOLLGATE_COOKIES.has(part.split('=')[0]!.trim()));
  return kept.length > 0 ? kept.join('; ') : undefined;
}

/**
 * The query without the access token (the upstream never sees it), every other parameter as the
 * client wrote it (URLSearchParams would write `a%20b` as `a+b`, which a service may read apart).
 */
export function queryWithoutAccess(search: string): string {
  if (!search.includes(ACCESS_QUERY)) return search;
  return search
    .split('&')
    .filter((part) => {
      const name = part.split('=', 1)[0]!;
      return name !== ACCESS_QUERY && safeDecodeComponent(name.replaceAll('+', ' ')) !== ACCESS_QUERY;
    })
    .join('&');
}

function safeDecodeComponent(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

export function accessCookie(token: string, path: string, secure: boolean): string {
  return `${ACCESS_COOKIE}=${token}; Path=${path}; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}`;
}
