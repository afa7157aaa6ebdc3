// A synchronous tar codec for paths that rewrite archives entry by entry (docker2aci). tar-stream
// gives every entry its own stream, and setting one up costs more than copying a small file; here
// a parser is fed chunks and calls back for each header and body slice, and a writer encodes
// headers into bytes, so a whole layer is rewritten without one object per entry beyond its
// header. Headers have tar-stream's `Header` shape, so decisions written for one serve both.
// Formats read: ustar, GNU (long names `L`/`K`), pax (`x`, `g`); written: ustar, with a pax
// record when a field does not fit (long or non-ASCII names, pax attributes such as xattrs).
import type { Header } from "tar-stream";
import { ErrorCode, RktError } from "@rkt/oci";

const block = 512;
/** Bytes of a long-name or pax body the parser accepts: paths and xattrs, not data. */
const maxMetaBody = 1 << 20;

/** Entry types, and the header types that only describe the next entry. */
export type TarType =
  Header["type"] | "pax-header" | "pax-global-header" | "gnu-long-path" | "gnu-long-link-path";

/** A header block as decoded: `type` undefined for a type flag no reader here knows (`flag`). */
export interface RawTarHeader extends Omit<Header, "type"> {
  type: TarType | undefined;
  /** The type flag byte as a character (`0`, `5`, `x`, `S`…). */
  flag: string;
}

const typeOfFlag: Readonly<Record<number, TarType>> = {
  0: "file",
  1: "link",
  2: "symlink",
  3: "character-device",
  4: "block-device",
  5: "directory",
  6: "fifo",
  7: "contiguous-file",
  55: "pax-global-header", // 'g'
  72: "pax-header", // 'x'
  27: "gnu-long-link-path", // 'K'
  28: "gnu-long-path", // 'L'
  30: "gnu-long-path", // 'N' (old GNU)
};

const flagOfType: Readonly<Record<string, number>> = {
  file: 0,
  link: 1,
  symlink: 2,
  "character-device": 3,
  "block-device": 4,
  directory: 5,
  fifo: 6,
  "contiguous-file": 7,
  "pax-header": 72,
};

function invalid(message: string): RktError {
  return new RktError(ErrorCode.InvalidArchive, message);
}

function str(b: Uint8Array, off: number, len: number): string {
  let end = off;
  const max = off + len;
  while (end < max && b[end] !== 0) end++;
  return Buffer.from(b.buffer, b.byteOffset + off, end - off).toString("utf8");
}

// Octal with optional leading spaces/NULs and trailing space/NUL, or GNU base-256 (high bit set).
function num(b: Uint8Array, off: number, len: number): number {
  if ((b[off]! & 0x80) !== 0) {
    const negative = b[off] === 0xff;
    let v = 0;
    for (let i = off + 1; i < off + len; i++) v = v * 256 + (negative ? 0xff - b[i]! : b[i]!);
    return negative ? -v - 1 : v;
  }
  let i = off;
  const end = off + len;
  while (i < end && (b[i] === 0x20 || b[i] === 0)) i++;
  let v = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = b[i]!;
    if (c === 0x20 || c === 0) break;
    if (c < 0x30 || c > 0x37) return Number.NaN;
    v = v * 8 + (c - 0x30);
    digits++;
  }
  return digits === 0 ? 0 : v;
}

function checksum(b: Uint8Array, off: number): number {
  let sum = 8 * 0x20; // the checksum field counts as spaces
  for (let i = off; i < off + 148; i++) sum += b[i]!;
  for (let i = off + 156; i < off + block; i++) sum += b[i]!;
  return sum;
}

function isZeroBlock(b: Uint8Array, off: number): boolean {
  for (let i = off; i < off + block; i++) if (b[i] !== 0) return false;
  return true;
}

/**
 * Decodes the 512-byte header at `off`; null for an all-zero block (end of archive).
 * RKT_INVALID_ARCHIVE for a bad checksum, an unknown format or a bad number. Pure.
 */
export function decodeTarHeader(b: Uint8Array, off = 0): RawTarHeader | null {
  if (isZeroBlock(b, off)) return null;
  const want = num(b, off + 148, 8);
  if (want !== checksum(b, off))
    throw invalid("tar header checksum mismatch: not a tar archive, or corrupted");
  const magic = str(b, off + 257, 6);
  if (magic !== "ustar" && magic !== "ustar ")
    throw invalid("tar header of an unknown format (no ustar magic)");
  const flag = b[off + 156] === 0 ? 0 : b[off + 156]! - 0x30;
  let name = str(b, off, 100);
  if (magic === "ustar" && b[off + 345] !== 0) name = `${str(b, off + 345, 155)}/${name}`;
  let type = typeOfFlag[flag];
  // Old tars mark directories only with a trailing slash.
  if (flag === 0 && name.endsWith("/")) type = "directory";
  const h: RawTarHeader = {
    name,
    mode: num(b, off + 100, 8),
    uid: num(b, off + 108, 8),
    gid: num(b, off + 116, 8),
    size: num(b, off + 124, 12),
    mtime: new Date(num(b, off + 136, 12) * 1000),
    type,
    linkname: str(b, off + 157, 100),
    uname: str(b, off + 265, 32),
    gname: str(b, off + 297, 32),
    devmajor: num(b, off + 329, 8),
    devminor: num(b, off + 337, 8),
    pax: null,
    flag: b[off + 156] === 0 ? "0" : String.fromCharCode(b[off + 156]!),
  };
  if ([h.mode, h.uid, h.gid, h.size, h.devmajor, h.devminor].some((v) => !Number.isFinite(v) || v < 0)) {
    throw invalid(`tar header of ${JSON.stringify(name)} has a field that is not a number`);
  }
  return h;
}

/** Parses pax records (`<len> <key>=<value>\n`…). RKT_INVALID_ARCHIVE for a malformed record. Pure. */
export function decodePaxRecords(b: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < b.length) {
    if (b[i] === 0) break; // padding some writers leave
    let sp = i;
    while (sp < b.length && b[sp] !== 0x20) sp++;
    const len = Number(Buffer.from(b.buffer, b.byteOffset + i, sp - i).toString("latin1"));
    if (!Number.isInteger(len) || len <= sp - i + 1 || i + len > b.length || b[i + len - 1] !== 0x0a) {
      throw invalid("malformed pax extended header record");
    }
    const rec = Buffer.from(b.buffer, b.byteOffset + sp + 1, i + len - 1 - (sp + 1)).toString("utf8");
    const eq = rec.indexOf("=");
    if (eq <= 0) throw invalid("malformed pax extended header record");
    out[rec.slice(0, eq)] = rec.slice(eq + 1);
    i += len;
  }
  return out;
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const n = Buffer.byteLength(body);
  // The length counts its own digits.
  let len = n + String(n).length;
  if (String(len).length !== String(n).length) len = n + String(len).length;
  return `${len}${body}`;
}

function putStr(b: Buffer, s: string, off: number, len: number): void {
  b.write(s, off, len, "utf8");
}

function putOct(b: Buffer, v: number, off: number, len: number): void {
  const digits = len - 1;
  const s = Math.trunc(v).toString(8);
  if (s.length <= digits) {
    b.write(s.padStart(digits, "0"), off, digits, "latin1");
    return;
  }
  // Too large for octal: GNU base-256 (sizes over 8 GiB), as GNU tar and Go write.
  b[off] = 0x80;
  let x = Math.trunc(v);
  for (let i = off + len - 1; i > off; i--) {
    b[i] = x % 256;
    x = Math.floor(x / 256);
  }
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7e) return false;
  return true;
}

// ustar's name split: the last ≤ 100 bytes in `name`, the leading ≤ 155 in `prefix`, cut at a slash.
function splitUstarName(name: string): { name: string; prefix: string } | undefined {
  if (name.length <= 100) return { name, prefix: "" };
  for (let i = name.indexOf("/"); i >= 0 && i <= 155; i = name.indexOf("/", i + 1)) {
    if (name.length - i - 1 <= 100 && i > 0) return { name: name.slice(i + 1), prefix: name.slice(0, i) };
  }
  return undefined;
}

function encodeBlock(
  h: TarHeaderInit,
  name: string,
  prefix: string,
  linkname: string,
  size: number,
  flag: number,
): Buffer {
  const b = Buffer.alloc(block);
  putStr(b, name, 0, 100);
  putOct(b, (h.mode ?? 0) & 0o7777, 100, 8);
  putOct(b, h.uid ?? 0, 108, 8);
  putOct(b, h.gid ?? 0, 116, 8);
  putOct(b, size, 124, 12);
  putOct(b, Math.floor((h.mtime?.getTime() ?? 0) / 1000), 136, 12);
  b[156] = 0x30 + flag;
  putStr(b, linkname, 157, 100);
  b.write("ustar\x0000", 257, 8, "latin1");
  putStr(b, h.uname ?? "", 265, 32);
  putStr(b, h.gname ?? "", 297, 32);
  putOct(b, h.devmajor ?? 0, 329, 8);
  putOct(b, h.devminor ?? 0, 337, 8);
  putStr(b, prefix, 345, 155);
  b.write(`${checksum(b, 0).toString(8).padStart(6, "0")}\0 `, 148, 8, "latin1");
  return b;
}

/** A header to write: `name` required, the rest defaulting to zero/empty; `type` defaults to file. */
export type TarHeaderInit = Partial<Header> & Pick<Header, "name">;

/**
 * Encodes a header: one 512-byte block, or a pax header (record block(s)) followed by it when a
 * name or link does not fit ustar or `pax` attributes are given. Directories get a trailing `/`.
 * Pure.
 */
export function encodeTarHeader(h: TarHeaderInit): Buffer {
  const type = h.type ?? "file";
  const flag = flagOfType[type] ?? 0;
  let name = h.name;
  if (type === "directory" && !name.endsWith("/")) name += "/";
  const linkname = h.linkname ?? "";
  const size = type === "file" || type === "contiguous-file" ? (h.size ?? 0) : 0;
  const split = isAscii(name) ? splitUstarName(name) : undefined;
  const linkFits = isAscii(linkname) && linkname.length <= 100;
  const pax = (h.pax ?? undefined) as Readonly<Record<string, string>> | undefined;
  if (split !== undefined && linkFits && (pax === undefined || Object.keys(pax).length === 0)) {
    return encodeBlock(h, split.name, split.prefix, linkname, size, flag);
  }
  let records = "";
  if (split === undefined) records += paxRecord("path", name);
  if (!linkFits) records += paxRecord("linkpath", linkname);
  for (const [k, v] of Object.entries(pax ?? {})) records += paxRecord(k, v);
  const body = Buffer.from(records, "utf8");
  const pad = (block - (body.length % block)) % block;
  const shortName = split ?? { name: asciiTail(name, 100), prefix: "" };
  return Buffer.concat([
    encodeBlock(h, "PaxHeader", "", "", body.length, flagOfType["pax-header"]!),
    body,
    Buffer.alloc(pad),
    encodeBlock(
      h,
      shortName.name,
      shortName.prefix,
      linkFits ? linkname : asciiTail(linkname, 100),
      size,
      flag,
    ),
  ]);
}

// A ustar field for readers without pax: the name's last ASCII characters that fit.
function asciiTail(s: string, n: number): string {
  return s.replace(/[^\x20-\x7e]/g, "_").slice(-n);
}

/** Two zero blocks: the end of an archive. */
export function tarEnd(): Buffer {
  return Buffer.alloc(2 * block);
}

/** Zero bytes that pad a body of `size` bytes to a whole block. */
export function tarPadding(size: number): number {
  return (block - (size % block)) % block;
}

const metaTypes: ReadonlySet<TarType | undefined> = new Set([
  "pax-header",
  "pax-global-header",
  "gnu-long-path",
  "gnu-long-link-path",
]);

function isMetaType(
  t: TarType | undefined,
): t is "pax-header" | "pax-global-header" | "gnu-long-path" | "gnu-long-link-path" {
  return metaTypes.has(t);
}

/** What a {@link TarParser} calls. */
export interface TarVisitor {
  /**
   * A new entry (long names and pax records applied; `pax` holds the entry's records). Return
   * true to receive the body through {@link TarVisitor.body}; false skips it.
   */
  entry(h: Header): boolean;
  /** A slice of the current entry's body (valid until the call returns unless kept by reference). */
  body(chunk: Buffer): void;
}

type State = "header" | "meta" | "body" | "pad" | "end";

/**
 * A push parser: feed chunks with {@link TarParser.push}, then {@link TarParser.end}. Bodies are
 * handed over as slices of the chunks fed (no copy). RKT_INVALID_ARCHIVE for malformed headers or
 * an archive cut mid-entry.
 */
export class TarParser {
  private state: State = "header";
  private readonly visitor: TarVisitor;
  /** A header (or meta body) split across chunks. */
  private partial: Buffer[] = [];
  private partialLen = 0;
  /** Bytes left in the current body, meta body or padding. */
  private left = 0;
  private wantBody = false;
  private header: Header | undefined;
  private meta: RawTarHeader | undefined;
  private longName: string | undefined;
  private longLink: string | undefined;
  private pax: Record<string, string> | undefined;
  private globalPax: Record<string, string> | undefined;
  private padAfter = 0;

  constructor(visitor: TarVisitor) {
    this.visitor = visitor;
  }

  /** Feeds bytes; calls the visitor synchronously for what they complete. */
  push(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      switch (this.state) {
        case "end":
          return;
        case "header": {
          if (this.partialLen === 0 && chunk.length - off >= block) {
            this.onHeader(chunk, off);
            off += block;
          } else {
            const n = Math.min(block - this.partialLen, chunk.length - off);
            this.partial.push(chunk.subarray(off, off + n));
            this.partialLen += n;
            off += n;
            if (this.partialLen === block) this.onHeader(this.takePartial(), 0);
          }
          break;
        }
        case "meta": {
          const n = Math.min(this.left, chunk.length - off);
          this.partial.push(chunk.subarray(off, off + n));
          this.partialLen += n;
          this.left -= n;
          off += n;
          if (this.left === 0) this.onMeta(this.takePartial());
          break;
        }
        case "body": {
          const n = Math.min(this.left, chunk.length - off);
          if (this.wantBody) this.visitor.body(chunk.subarray(off, off + n));
          this.left -= n;
          off += n;
          if (this.left === 0) this.afterBody();
          break;
        }
        case "pad": {
          const n = Math.min(this.left, chunk.length - off);
          this.left -= n;
          off += n;
          if (this.left === 0) this.nextHeader();
          break;
        }
      }
    }
  }

  /** The input ended: RKT_INVALID_ARCHIVE when it ended inside an entry. */
  end(): void {
    if (this.state === "end" || (this.state === "header" && this.partialLen === 0)) return;
    throw invalid(
      this.header === undefined
        ? "tar archive truncated in a header"
        : `tar archive truncated in entry ${JSON.stringify(this.header.name)}`,
    );
  }

  private takePartial(): Buffer {
    const b = this.partial.length === 1 ? this.partial[0]! : Buffer.concat(this.partial, this.partialLen);
    this.partial = [];
    this.partialLen = 0;
    return b;
  }

  private onHeader(b: Buffer, off: number): void {
    const raw = decodeTarHeader(b, off);
    if (raw === null) {
      // One zero block ends the archive for our purposes (GNU tar reads the second and stops too).
      this.state = "end";
      return;
    }
    if (isMetaType(raw.type)) {
      this.header = undefined;
      if (raw.size > maxMetaBody) throw invalid(`tar ${raw.type} of ${raw.size} bytes is too large`);
      this.meta = raw;
      this.left = raw.size;
      this.padAfter = tarPadding(raw.size);
      this.state = "meta";
      if (raw.size === 0) this.onMeta(Buffer.alloc(0));
      return;
    }
    if (raw.type === undefined) {
      throw invalid(
        `tar entry ${JSON.stringify(this.longName ?? raw.name)} has type ${JSON.stringify(raw.flag)}, which is not supported`,
      );
    }
    const { flag: _flag, ...fields } = raw;
    const h: Header = { ...fields, type: raw.type };
    if (this.longName !== undefined) h.name = this.longName;
    if (this.longLink !== undefined) h.linkname = this.longLink;
    const pax = this.globalPax === undefined ? this.pax : { ...this.globalPax, ...this.pax };
    if (pax !== undefined) {
      if (pax["path"] !== undefined) h.name = pax["path"];
      if (pax["linkpath"] !== undefined) h.linkname = pax["linkpath"];
      if (pax["size"] !== undefined) {
        const size = Number(pax["size"]);
        if (!Number.isSafeInteger(size) || size < 0)
          throw invalid(`pax size of ${JSON.stringify(h.name)} is not a number`);
        h.size = size;
      }
      h.pax = pax;
    }
    this.longName = undefined;
    this.longLink = undefined;
    this.pax = undefined;
    // Directories carry no body whatever their size field says (as tar-stream reads them).
    const size = h.type === "directory" ? 0 : h.size;
    this.header = h;
    this.wantBody = this.visitor.entry(h);
    this.left = size;
    this.padAfter = tarPadding(size);
    if (size === 0) this.afterBody();
    else this.state = "body";
  }

  private onMeta(b: Buffer): void {
    const m = this.meta!;
    this.meta = undefined;
    if (m.type === "gnu-long-path") this.longName = str(b, 0, b.length);
    else if (m.type === "gnu-long-link-path") this.longLink = str(b, 0, b.length);
    else if (m.type === "pax-header") this.pax = { ...this.pax, ...decodePaxRecords(b) };
    else this.globalPax = { ...this.globalPax, ...decodePaxRecords(b) };
    this.afterBody();
  }

  private afterBody(): void {
    this.left = this.padAfter;
    if (this.left === 0) this.nextHeader();
    else this.state = "pad";
  }

  private nextHeader(): void {
    this.header = undefined;
    this.state = "header";
  }
}
