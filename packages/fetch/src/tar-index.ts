// An index of an uncompressed tar file built by reading its headers only (512-byte blocks at
// known offsets; bodies are skipped with seeks), so a `docker save` archive's layers can be read
// straight from their offsets instead of scanning the whole archive once per pass.
import { open } from "node:fs/promises";
import { posix } from "node:path";
import { cleanTarPath } from "@rkt/appc";
import { isArchiveDocument, type ArchiveEntry, type ArchiveIndex } from "./docker-archive-plan.js";
import { ErrorCode, RktError } from "@rkt/oci";

/** Where a regular file's body lies in the tar. */
export interface TarSpan {
  readonly offset: number;
  readonly size: number;
}

/** An {@link ArchiveIndex} plus the body offsets of the regular files (the last of each name). */
export interface SeekableArchiveIndex extends ArchiveIndex {
  readonly spans: ReadonlyMap<string, TarSpan>;
}

const maxDocument = 4 << 20;
// PAX records and GNU long names are read whole: as tar-stream, refuse larger ones.
const maxMetaHeader = 1 << 20;
const maxDocuments = 64 << 20;

function field(b: Buffer, off: number, len: number): string {
  const s = b.subarray(off, off + len);
  const nul = s.indexOf(0);
  return s.subarray(0, nul < 0 ? len : nul).toString("utf8");
}

function octal(b: Buffer, off: number, len: number): number {
  // GNU base-256 for large sizes: high bit of the first byte set.
  if ((b[off] ?? 0) & 0x80) {
    let n = 0;
    for (let i = off + 1; i < off + len; i++) n = n * 256 + (b[i] ?? 0);
    return n;
  }
  const s = field(b, off, len).trim();
  return s === "" ? 0 : parseInt(s, 8);
}

function checksumOk(h: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : (h[i] ?? 0);
  return sum === octal(h, 148, 8);
}

function paxRecords(b: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  while (i < b.length) {
    const sp = b.indexOf(0x20, i);
    if (sp < 0) break;
    const len = parseInt(b.subarray(i, sp).toString(), 10);
    if (!(len > 0)) break;
    const rec = b.subarray(sp + 1, i + len - 1).toString("utf8");
    const eq = rec.indexOf("=");
    if (eq > 0) out.set(rec.slice(0, eq), rec.slice(eq + 1));
    i += len;
  }
  return out;
}

/**
 * Indexes the uncompressed tar `file` by its headers (ustar, PAX `x` records for path, linkpath
 * and size, GNU long names), reading the small documents `isDocument` names (default: a
 * docker-archive's, {@link isArchiveDocument}). Returns
 * undefined when the file does not start with a tar header (compressed: use a streaming scan).
 * RKT_INVALID_ARCHIVE for a bad checksum or a truncated archive.
 */
export async function indexTarFile(
  file: string,
  isDocument: (name: string) => boolean = isArchiveDocument,
): Promise<SeekableArchiveIndex | undefined> {
  const fh = await open(file, "r");
  try {
    const size = (await fh.stat()).size;
    const entries = new Map<string, ArchiveEntry>();
    const docs = new Map<string, Uint8Array>();
    const spans = new Map<string, TarSpan>();
    let docBytes = 0;
    const read = async (offset: number, len: number): Promise<Buffer> => {
      const b = Buffer.alloc(len);
      const { bytesRead } = await fh.read(b, 0, len, offset);
      if (bytesRead !== len)
        throw new RktError(ErrorCode.InvalidArchive, `${file}: not a readable tar archive: truncated`);
      return b;
    };
    let pos = 0;
    let pax = new Map<string, string>();
    let longName: string | undefined;
    let longLink: string | undefined;
    for (let first = true; pos + 512 <= size; first = false) {
      const h = await read(pos, 512);
      if (h.every((x) => x === 0)) break;
      if (!checksumOk(h)) {
        if (first) return undefined;
        throw new RktError(
          ErrorCode.InvalidArchive,
          `${file}: not a readable tar archive: bad header checksum at offset ${pos}`,
        );
      }
      const type = String.fromCharCode(h[156] ?? 0x30);
      let bodySize = octal(h, 124, 12);
      const body = pos + 512;
      // Found by test/fuzz: a size that is not a count made the walk go backwards (forever, for a
      // negative PAX size) or allocate what the header claimed.
      const bad = (why: string) =>
        new RktError(
          ErrorCode.InvalidArchive,
          `${file}: not a readable tar archive: ${why} at offset ${pos}`,
        );
      if (!Number.isSafeInteger(bodySize) || bodySize < 0) throw bad("invalid size");
      if (type === "x" || type === "g" || type === "L" || type === "K") {
        if (bodySize > maxMetaHeader) throw bad(`a ${bodySize}-byte extended header`);
        const data = await read(body, bodySize);
        if (type === "x") pax = paxRecords(data);
        else if (type === "L") longName = field(data, 0, data.length);
        else if (type === "K") longLink = field(data, 0, data.length);
        pos = body + Math.ceil(bodySize / 512) * 512;
        continue;
      }
      const prefix = field(h, 345, 155);
      let name =
        pax.get("path") ?? longName ?? (prefix === "" ? field(h, 0, 100) : `${prefix}/${field(h, 0, 100)}`);
      const linkname = pax.get("linkpath") ?? longLink ?? field(h, 157, 100);
      const paxSize = pax.get("size");
      if (paxSize !== undefined) {
        if (!/^[0-9]{1,15}$/.test(paxSize))
          throw bad(`invalid PAX size ${JSON.stringify(paxSize.slice(0, 40))}`);
        bodySize = Number(paxSize);
      }
      pax = new Map();
      longName = undefined;
      longLink = undefined;
      name = cleanTarPath(name);
      const safe = name !== "." && name !== ".." && !name.startsWith("../") && !name.startsWith("/");
      if (safe) {
        if (type === "1" || type === "2") {
          const target = type === "2" ? posix.join(posix.dirname(name), linkname) : cleanTarPath(linkname);
          entries.set(name, { type: "link", size: 0, target });
        } else if (type === "0" || type === "\0" || type === "7") {
          const prior = entries.get(name);
          const occurrences = (prior?.type === "file" ? (prior.occurrences ?? 1) : 0) + 1;
          entries.set(name, { type: "file", size: bodySize, occurrences });
          spans.set(name, { offset: body, size: bodySize });
          docs.delete(name);
          if (isDocument(name) && bodySize <= maxDocument) {
            const data = await read(body, bodySize);
            // Docker 25+ keeps configs and layers alike under blobs/sha256/: only JSON is kept.
            if (!name.startsWith("blobs/") || data[0] === 0x7b) {
              docBytes += data.length;
              if (docBytes > maxDocuments) {
                throw new RktError(
                  ErrorCode.TooLarge,
                  `${file}: more than ${maxDocuments} bytes of JSON documents`,
                );
              }
              docs.set(name, data);
            }
          }
        } else entries.set(name, { type: "other", size: 0 });
      }
      pos = body + Math.ceil(bodySize / 512) * 512;
      if (pos > size)
        throw new RktError(ErrorCode.InvalidArchive, `${file}: not a readable tar archive: truncated`);
    }
    return { entries, docs, spans };
  } finally {
    await fh.close();
  }
}
