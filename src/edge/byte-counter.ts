import type { IncomingMessage } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';

const noop = () => {};

/** A pass-through that tells how many bytes went by (a session's traffic counts). */
export class ByteCounter extends Transform {
  private listener: ((bytes: number) => void) | null = null;
  /** Bytes that went by before anyone listened: a request's body flows while the request is charged. */
  private unheard = 0;
  private upload: IncomingMessage | null = null;

  /**
   * A customer's upload, counted on its way to the service. Piped, not pipelined: the service's
   * side ending (an abort destroys the body it was reading) must not destroy the client's
   * request, whose connection still carries the answer.
   */
  static upload(request: IncomingMessage): ByteCounter {
    const counted = new ByteCounter();
    counted.upload = request;
    request.pipe(counted);
    request.on('error', noop);
    // Whoever reads it (undici) hears its end; until then, and after, an error here is nobody's to throw.
    counted.on('error', noop);
    request.once('close', () => {
      if (!request.complete) counted.destroy(new Error('the client left before its upload was whole'));
    });
    return counted;
  }

  set onBytes(listener: (bytes: number) => void) {
    this.listener = listener;
    if (this.unheard > 0) listener(this.unheard);
    this.unheard = 0;
  }

  /**
   * An answer goes before the upload is whole (a cut, the service unreachable): the service gets no
   * more of it, and the rest is read and dropped (HTTP_REQUEST_TIMEOUT_MS bounds it), so the client,
   * still sending, gets its answer on a connection that stays usable.
   */
  dropUpload(): void {
    const request = this.upload;
    if (!request) return;
    // Not all of it read yet (the client still sending, or its last bytes still buffered here).
    if (!request.readableEnded) {
      request.unpipe(this);
      request.resume();
    }
    this.destroy();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.listener) this.listener(chunk.length);
    else this.unheard += chunk.length;
    callback(null, chunk);
  }
}
