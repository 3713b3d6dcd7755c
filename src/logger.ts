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

/** A request as logged: the edge's `?access_token=` never reaches a log line (DESIGN rule 10). */
function requestForLog(request: { method?: string; url?: string; host?: string; ip?: string; socket?: { remotePort?: number } }) {
  return {
    method: request.method,
    url: request.url?.replace(/([?&]access_token=)[^&#]*/g, '$1[redacted]'),
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  const options = { level, redact: { paths: REDACTED_PATHS, censor: '[redacted]' }, serializers: { req: requestForLog } };
  return destination ? pino(options, destination) : pino(options);
}
