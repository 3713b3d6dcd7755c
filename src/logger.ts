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
];

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  const options = { level, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } };
  return destination ? pino(options, destination) : pino(options);
}
