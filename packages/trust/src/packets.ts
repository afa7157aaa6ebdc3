// A minimal OpenPGP packet walker (RFC 4880 §4.2), used to check the structure of a signed
// message before handing it to openpgp: openpgp parses the packets after the literal data lazily,
// so its packet list cannot tell how many signatures a message carries.
import { inflateRawSync, inflateSync } from "node:zlib";

/** Packet tags we look at. */
export const PacketTag = {
  Signature: 2,
  OnePassSignature: 4,
  Compressed: 8,
  Marker: 10,
  Literal: 11,
} as const;

/** One packet: its tag and body (partial-length chunks joined). */
export interface RawPacket {
  readonly tag: number;
  readonly body: Uint8Array;
}

/**
 * Splits `bytes` into packets. Throws an Error naming the offset on a malformed header or a
 * length past the end. Pure.
 */
export function readPackets(bytes: Uint8Array): RawPacket[] {
  const out: RawPacket[] = [];
  let i = 0;
  const need = (n: number): void => {
    if (i + n > bytes.length) throw new Error(`truncated packet at offset ${i}`);
  };
  while (i < bytes.length) {
    const start = i;
    const h = bytes[i++]!;
    if ((h & 0x80) === 0) throw new Error(`invalid packet header at offset ${start}`);
    let tag: number;
    const chunks: Uint8Array[] = [];
    if ((h & 0x40) === 0) {
      tag = (h >> 2) & 0x0f;
      const lt = h & 3;
      let len: number;
      if (lt === 3) len = bytes.length - i;
      else {
        const n = lt === 0 ? 1 : lt === 1 ? 2 : 4;
        need(n);
        len = 0;
        for (let k = 0; k < n; k++) len = len * 256 + bytes[i++]!;
      }
      need(len);
      chunks.push(bytes.subarray(i, i + len));
      i += len;
    } else {
      tag = h & 0x3f;
      for (;;) {
        need(1);
        const o1 = bytes[i++]!;
        let len: number;
        let partial = false;
        if (o1 < 192) len = o1;
        else if (o1 < 224) {
          need(1);
          len = ((o1 - 192) << 8) + bytes[i++]! + 192;
        } else if (o1 === 255) {
          need(4);
          len = ((bytes[i]! << 24) >>> 0) + (bytes[i + 1]! << 16) + (bytes[i + 2]! << 8) + bytes[i + 3]!;
          i += 4;
        } else {
          len = 1 << (o1 & 0x1f);
          partial = true;
        }
        need(len);
        chunks.push(bytes.subarray(i, i + len));
        i += len;
        if (!partial) break;
      }
    }
    out.push({ tag, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) });
  }
  return out;
}

/**
 * The packets of a message, looking inside a single compressed packet (ZIP or ZLIB, output
 * capped at `maxBytes`). Throws an Error for other compression algorithms or malformed input.
 */
export function messagePackets(bytes: Uint8Array, maxBytes: number): RawPacket[] {
  let packets = readPackets(bytes);
  const first = packets[0];
  if (packets.length === 1 && first?.tag === PacketTag.Compressed) {
    const algo = first.body[0];
    const data = first.body.subarray(1);
    let inner: Uint8Array;
    if (algo === 0) inner = data;
    else if (algo === 1) inner = inflateRawSync(data, { maxOutputLength: maxBytes });
    else if (algo === 2) inner = inflateSync(data, { maxOutputLength: maxBytes });
    else throw new Error(`unsupported compression algorithm ${String(algo)}`);
    packets = readPackets(inner);
  }
  return packets;
}
