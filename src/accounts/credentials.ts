import { createHash, randomBytes } from 'node:crypto';
import { hash, verify } from '@node-rs/argon2';

// Algorithm.Argon2id; the package exports it as a const enum, which isolated modules cannot read.
const ARGON2ID = 2;

/**
 * argon2id with OWASP's first recommended configuration (Password Storage Cheat Sheet: m = 19 MiB,
 * t = 2, p = 1), stated here rather than left to the library's defaults, which may change.
 */
export const ARGON2_PARAMETERS = { memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

/** OWASP's minimum for argon2id: 19 MiB and 2 passes (or more memory for fewer passes, which we do not use). */
export const OWASP_MINIMUM = { memoryCost: 19_456, timeCost: 2 } as const;

// @node-rs/argon2 ships prebuilt binaries as optional dependencies: no install script to allow.
export const hashPassword = (password: string) => hash(password, { algorithm: ARGON2ID, ...ARGON2_PARAMETERS });

export const verifyPassword = (passwordHash: string, password: string) =>
  verify(passwordHash, password).catch(() => false);

/** The parameters a stored argon2 hash was made with, or null when it is not one. */
export function argon2ParametersOf(passwordHash: string): { algorithm: string; memoryCost: number; timeCost: number; parallelism: number } | null {
  const match = /^\$(argon2(?:id|i|d))\$v=\d+\$m=(\d+),t=(\d+),p=(\d+)\$/.exec(passwordHash);
  if (!match) return null;
  return { algorithm: match[1]!, memoryCost: Number(match[2]), timeCost: Number(match[3]), parallelism: Number(match[4]) };
}

/** A stored hash weaker than (or other than) today's parameters: rehashed at the next good log-in. */
export function needsRehash(passwordHash: string): boolean {
  const stored = argon2ParametersOf(passwordHash);
  return (
    stored === null ||
    stored.algorithm !== 'argon2id' ||
    stored.memoryCost < ARGON2_PARAMETERS.memoryCost ||
    stored.timeCost < ARGON2_PARAMETERS.timeCost
  );
}

/**
 * A hash of a random password with today's parameters: a log-in for an e-mail nobody has is
 * checked against it, so it costs the same argon2 work and time as a wrong password.
 */
export const decoyHash = (): Promise<string> => hashPassword(randomBytes(16).toString('base64url'));

/** A bearer secret (256 random bits) with a prefix saying what it is; only its SHA-256 is stored. */
export function newSecret(prefix: 'tg' | 'tgo' | 'tgm'): { secret: string; secretHash: Buffer } {
  const secret = `${prefix}_${randomBytes(32).toString('base64url')}`;
  return { secret, secretHash: hashToken(secret) };
}

/** High-entropy secrets need no slow hash: SHA-256 lets a look-up use an index. */
export const hashToken = (token: string) => createHash('sha256').update(token).digest();
