import { Transform, type TransformCallback } from 'node:stream';

/** A pass-through that tells how many bytes went by (a session's traffic counts). */
export class ByteCounter extends Transform {
  private listener: ((bytes: number) => void) | null = null;
  /** Bytes that went by before anyone listened: a request's body flows while the request is charged. */
  private unheard = 0;

  set onBytes(listener: (bytes: number) => void) {
    this.listener = listener;
    if (this.unheard > 0) listener(this.unheard);
    this.unheard = 0;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.listener) this.listener(chunk.length);
    else this.unheard += chunk.length;
    callback(null, chunk);
  }
}
