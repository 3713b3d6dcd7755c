import { createHash, randomBytes } from 'node:crypto';
import { hash, verify } from '@node-rs/argon2';

// Algorithm.Argon2id; the package exports it as a const enum, which isolated modules cannot read.
const ARGON2ID = 2;

// @node-rs/argon2 ships prebuilt binaries as optional dependencies: no install script to allow.
export const hashPassword = (password: string) => hash(password, { algorithm: ARGON2ID });

export const verifyPassword = (passwordHash: string, password: string) =>
  verify(passwordHash, password).catch(() => false);

/** A bearer token for the customer; only its SHA-256 is stored. */
export function newApiToken(): { token: string; tokenHash: Buffer } {
  const token = `tg_${randomBytes(32).toString('base64url')}`;
  return { token, tokenHash: hashToken(token) };
}

export const hashToken = (token: string) => createHash('sha256').update(token).digest();
