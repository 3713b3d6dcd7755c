import { Transform, type TransformCallback } from 'node:stream';

/** A pass-through that tells how many bytes went by (a session's traffic counts). */
export class ByteCounter extends Transform {
  onBytes: (bytes: number) => void = () => {};

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.onBytes(chunk.length);
    callback(null, chunk);
  }
}
