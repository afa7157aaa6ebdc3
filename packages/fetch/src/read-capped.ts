// Reading a small HTTP body whole, with a cap.
import type { Readable } from "node:stream";
import { ErrorCode, RktError } from "@rkt/oci";

/** The whole of `body`, or RKT_TOO_LARGE (naming `what`) once it passes `max` bytes. */
export async function readCapped(body: Readable, max: number, what: string): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > max) {
      body.destroy();
      throw new RktError(ErrorCode.TooLarge, `${what}: larger than ${max} bytes`);
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks, n);
}
