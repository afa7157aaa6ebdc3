// Counting the bytes that pass, for progress events. Pure (a stream transform, no I/O).
import { Transform } from "node:stream";

/**
 * A pass-through Transform that reports the running byte count (from `start`, for a resumed
 * blob) after each chunk. With no callback it only passes bytes on.
 */
export function byteCounter(onBytes: ((n: number) => void) | undefined, start = 0): Transform {
  let n = start;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      onBytes?.(n);
      cb(null, chunk);
    },
  });
}
