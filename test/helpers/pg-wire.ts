/**
 * The PostgreSQL wire protocol (v3), read only as far as pg-fault-proxy needs: where each
 * message ends, and the few fields that say which statement a client runs.
 * https://www.postgresql.org/docs/current/protocol-message-formats.html
 */

/** Codes of the untyped packets a client may send before its startup message. */
export const SSL_REQUEST = 80877103;
export const GSSENC_REQUEST = 80877104;
export const CANCEL_REQUEST = 80877102;

/**
 * Cuts one TCP stream into whole messages. A message split across chunks waits for its rest,
 * so a fault can fall exactly between two messages.
 */
export class MessageReader {
  private buffered: Buffer = Buffer.alloc(0);
  /** False until the client's startup packet, which alone has no type byte. */
  constructor(public typed: boolean) {}

  push(chunk: Buffer) {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
  }

  next(): Buffer | undefined {
    const header = this.typed ? 1 : 0;
    if (this.buffered.length < header + 4) return undefined;
    const size = header + this.buffered.readInt32BE(header);
    if (this.buffered.length < size) return undefined;
    const message = this.buffered.subarray(0, size);
    this.buffered = this.buffered.subarray(size);
    return message;
  }
}

/** The NUL-terminated string at `at`, and where the next field starts. */
export function cstring(message: Buffer, at: number): [string, number] {
  const end = message.indexOf(0, at);
  return [message.toString('utf8', at, end), end + 1];
}

/** A Bind message's portal, statement and the values of its text-format parameters. */
export function readBind(message: Buffer) {
  const [portal, afterPortal] = cstring(message, 5);
  const [statement, afterStatement] = cstring(message, afterPortal);
  let at = afterStatement;
  const formatCount = message.readUInt16BE(at);
  const formats = Array.from({ length: formatCount }, (_, i) => message.readInt16BE(at + 2 + 2 * i));
  at += 2 + 2 * formatCount;
  const values: string[] = [];
  const valueCount = message.readUInt16BE(at);
  at += 2;
  for (let i = 0; i < valueCount; i++) {
    const size = message.readInt32BE(at);
    at += 4;
    if (size < 0) continue;
    // No formats means all text; one format applies to every parameter.
    const binary = (formatCount === 1 ? formats[0] : formats[i]) === 1;
    if (!binary) values.push(message.toString('utf8', at, at + size));
    at += size;
  }
  return { portal, statement, values };
}
