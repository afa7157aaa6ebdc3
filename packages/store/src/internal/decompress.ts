// TEMPORARY stand-in for @rkt/appc's `detectCompression` / `decompressor`, which are being written
// in parallel; same names and shapes so the swap is one import line. Handles gzip and none only.
import { Transform, type Duplex } from "node:stream";
import { createGunzip } from "node:zlib";
import { ErrorCode, RktError } from "@rkt/oci";

export type Compression = "gzip" | "bzip2" | "xz" | "zstd" | "none";
export const compressionMagicLength = 6;

const magics: readonly (readonly [Compression, readonly number[]])[] = [
  ["gzip", [0x1f, 0x8b]],
  ["bzip2", [0x42, 0x5a, 0x68]],
  ["xz", [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ["zstd", [0x28, 0xb5, 0x2f, 0xfd]],
];

export function detectCompression(firstBytes: Uint8Array): Compression {
  for (const [kind, magic] of magics) {
    if (firstBytes.length >= magic.length && magic.every((b, i) => firstBytes[i] === b)) return kind;
  }
  return "none";
}

export function decompressor(kind: Compression): Duplex {
  switch (kind) {
    case "gzip":
      return createGunzip();
    case "none":
      return new Transform({
        transform(chunk: Buffer, _enc, cb) {
          cb(null, chunk);
        },
      });
    case "bzip2":
    case "xz":
    case "zstd":
      throw new RktError(ErrorCode.UnsupportedMediaType, `${kind} compression is not supported yet`);
  }
}
