// Shared by the CLI tests that call `main` in process.
import { PassThrough } from "node:stream";

/** A stream that collects what a command writes to it. */
export function sink(): { stream: PassThrough; text: () => string; bytes: () => Buffer } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on("data", (c: Buffer) => chunks.push(c));
  const bytes = (): Buffer => Buffer.concat(chunks);
  return { stream, bytes, text: () => bytes().toString("utf8") };
}
