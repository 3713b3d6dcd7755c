import { pino, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

/** Paths that must never reach a log line (DESIGN rule 10). */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'password',
  'card',
  'card.number',
  'card.cvc',
  'token',
  '*.password',
  '*.card',
  '*.token',
  'adminToken',
  'bootstrapToken',
  'apiKey',
  '*.apiKey',
  'signingSecret',
  '*.signingSecret',
  'req.headers.cookie',
];

/**
 * An edge access token (tge_ and its session's id) anywhere in a URL, its underscore or dash
 * percent-encoded or not: a client may put it where the edge does not look (another parameter's
 * name or case, a path segment), and is refused, but the URL is still logged.
 */
const ACCESS_TOKEN_ANYWHERE = /tge(?:_|%5f)[0-9a-f]{8}(?:-|%2d)[^&#/;?,\s]*/gi;

/** A request as logged: the edge's `?access_token=` (or its token anywhere else) never reaches a log line (DESIGN rule 10). */
function requestForLog(request: { method?: string; url?: string; host?: string; ip?: string; socket?: { remotePort?: number } }) {
  return {
    method: request.method,
    url: request.url?.replace(/([?&]access_token=)[^&#]*/g, '$1[redacted]').replace(ACCESS_TOKEN_ANYWHERE, '[redacted]'),
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  const options = { level, redact: { paths: REDACTED_PATHS, censor: '[redacted]' }, serializers: { req: requestForLog } };
  return destination ? pino(options, destination) : pino(options);
}
