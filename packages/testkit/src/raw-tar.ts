// A raw tar writer for hostile inputs (fuzzing, extractor tests): any typeflag, any name,
// declared sizes that lie, PAX records of our choosing. tar-stream refuses to write most of these.

/** One entry, written as given. `type` is the typeflag character (`0` file, `5` dir, `2` symlink…). */
export interface RawEntry {
  name: string;
  type?: string | undefined;
  body?: string | Buffer | undefined;
  /** Declared size; defaults to the body's length (a regular file) or 0. */
  size?: number | undefined;
  linkname?: string | undefined;
  mode?: number | undefined;
  uid?: number | undefined;
  gid?: number | undefined;
  devmajor?: number | undefined;
  devminor?: number | undefined;
  /** PAX records written in an `x` header before the entry (`path` and `linkpath` are added for long names). */
  pax?: Record<string, string> | undefined;
}

const block = 512;

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, "0")}\0`;
}

function header(name: string, type: string, size: number, e: RawEntry): Buffer {
  const h = Buffer.alloc(block);
  const put = (off: number, len: number, s: string) => {
    h.write(s.slice(0, len), off, len, "utf8");
  };
  put(0, 100, name);
  put(100, 8, octal(e.mode ?? (type === "5" ? 0o755 : 0o644), 8));
  put(108, 8, octal(e.uid ?? 0, 8));
  put(116, 8, octal(e.gid ?? 0, 8));
  if (size < 8 ** 11) put(124, 12, octal(size, 12));
  else {
    // GNU base-256 for declared sizes beyond 8 GiB.
    h[124] = 0x80;
    let n = BigInt(size);
    for (let i = 135; i > 124; i--) {
      h[i] = Number(n & 0xffn);
      n >>= 8n;
    }
  }
  put(136, 12, octal(946684800, 12));
  h.fill(0x20, 148, 156);
  put(156, 1, type);
  put(157, 100, e.linkname ?? "");
  put(257, 6, "ustar\0");
  put(263, 2, "00");
  put(329, 8, octal(e.devmajor ?? 0, 8));
  put(337, 8, octal(e.devminor ?? 0, 8));
  let sum = 0;
  for (const b of h) sum += b;
  put(148, 8, `${sum.toString(8).padStart(6, "0")}\0 `);
  return h;
}

function padded(body: Buffer): Buffer[] {
  const rest = body.length % block;
  return rest === 0 ? [body] : [body, Buffer.alloc(block - rest)];
}

function paxRecord(k: string, v: string): string {
  const body = ` ${k}=${v}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len)
    len = String(len).length + Buffer.byteLength(body);
  return `${len}${body}`;
}

/** The blocks of one entry: its PAX header if any, its header, its body (padded). */
export function entryBlocks(e: RawEntry): Buffer[] {
  const type = e.type ?? "0";
  const body = e.body === undefined ? Buffer.alloc(0) : Buffer.from(e.body);
  const size = e.size ?? (type === "0" || type === "" ? body.length : 0);
  const pax: Record<string, string> = { ...e.pax };
  if (Buffer.byteLength(e.name) > 100 && pax["path"] === undefined) pax["path"] = e.name;
  if (e.linkname !== undefined && Buffer.byteLength(e.linkname) > 100 && pax["linkpath"] === undefined)
    pax["linkpath"] = e.linkname;
  const out: Buffer[] = [];
  if (Object.keys(pax).length > 0) {
    const records = Buffer.from(
      Object.entries(pax)
        .map(([k, v]) => paxRecord(k, v))
        .join(""),
    );
    out.push(header("PaxHeader", "x", records.length, { name: "PaxHeader" }), ...padded(records));
  }
  out.push(header(e.name, type, size, e), ...padded(body));
  return out;
}

/** The two zero blocks that end an archive. */
export const endOfArchive = Buffer.alloc(2 * block);

/** A whole archive in memory (small hostile layers). */
export function rawTar(entries: readonly RawEntry[]): Buffer {
  return Buffer.concat([...entries.flatMap(entryBlocks), endOfArchive]);
}
