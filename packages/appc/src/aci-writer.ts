// Writing ACI archives as a stream: `manifest` first, then `rootfs` and its entries, as actool
// and docker2aci lay them out (rkt reads the manifest without scanning the whole tar that way).
import { once } from "node:events";
import { Readable } from "node:stream";
import { createGzip } from "node:zlib";
import { ErrorCode, RktError } from "@rkt/oci";
import type { Header, Pack } from "tar-stream";
import { tarStream } from "./tar.js";
import { cleanTarPath } from "./aci-reader.js";
import { parseImageManifestOrThrow } from "./manifest.js";

/** One rootfs entry to write. */
export interface AciWriteEntry {
  /**
   * The tar header; `name` is the path inside the rootfs (`bin/sh`, `/bin/sh` and `./bin/sh` are
   * the same); `.` is the rootfs directory itself. For a hard link, `linkname` is inside the
   * rootfs too. A file with a streamed body needs `size`.
   */
  readonly header: Partial<Header> & Pick<Header, "name">;
  /** File contents; bytes, or a stream/iterable of chunks totalling `header.size`. */
  readonly body?: Uint8Array | string | AsyncIterable<Uint8Array> | undefined;
}

/** Options of {@link writeAci}. */
export interface WriteAciOptions {
  /** gzip the output (appc's default for .aci files); default `none` (a plain tar). */
  compression?: "gzip" | "none" | undefined;
  /** mtime of the `manifest` and default `rootfs` entries; default the epoch, for reproducible IDs. */
  mtime?: Date | undefined;
}

function rootfsPath(name: string): string {
  const clean = cleanTarPath(name.startsWith("/") ? name.slice(1) : name);
  if (clean === ".." || clean.startsWith("../") || clean.startsWith("/")) {
    throw new RktError(ErrorCode.InvalidArgument, `ACI entry ${JSON.stringify(name)} is outside rootfs`);
  }
  return clean === "." ? "rootfs" : `rootfs/${clean}`;
}

async function writeEntries(
  p: Pack,
  manifest: Uint8Array,
  entries: AsyncIterable<AciWriteEntry> | Iterable<AciWriteEntry>,
  mtime: Date,
): Promise<void> {
  const write = (h: Partial<Header> & Pick<Header, "name">, data: Uint8Array | string) =>
    new Promise<void>((resolve, reject) => {
      p.entry(h, data, (err) => (err ? reject(err) : resolve()));
    });
  await write({ name: "manifest", type: "file", mode: 0o644, mtime, uname: "root", gname: "root" }, manifest);
  let first = true;
  for await (const e of entries) {
    const name = rootfsPath(e.header.name);
    const header = { ...e.header, name };
    if (name === "rootfs") {
      if (!first) {
        throw new RktError(ErrorCode.InvalidArgument, "ACI entry for the rootfs directory must come first");
      }
      if ((header.type ?? "directory") !== "directory") {
        throw new RktError(ErrorCode.InvalidArgument, "ACI rootfs entry must be a directory");
      }
      header.type = "directory";
    } else if (first) {
      await write({ name: "rootfs", type: "directory", mode: 0o755, mtime }, "");
    }
    first = false;
    if (header.type === "link") header.linkname = rootfsPath(header.linkname ?? "");
    const body = e.body;
    if (body === undefined || typeof body === "string" || body instanceof Uint8Array) {
      await write(header, body ?? "");
      continue;
    }
    if (header.size === undefined) {
      throw new RktError(
        ErrorCode.InvalidArgument,
        `ACI entry ${JSON.stringify(e.header.name)}: a streamed body needs header.size`,
      );
    }
    let failed: Error | null | undefined;
    const done = new Promise<void>((resolve, reject) => {
      const sink = p.entry(header, (err) => {
        failed = err;
        return err ? reject(err) : resolve();
      });
      void (async () => {
        try {
          for await (const chunk of body) {
            if (failed) return;
            if (!sink.write(chunk)) await once(sink as unknown as NodeJS.EventEmitter, "drain");
          }
          sink.end(undefined); // streamx types end() with a required argument; undefined means "no last chunk"
        } catch (err) {
          const error = err instanceof Error ? err : new Error("entry body failed");
          sink.destroy(error);
          reject(error);
        }
      })();
    });
    await done;
  }
  if (first) await write({ name: "rootfs", type: "directory", mode: 0o755, mtime }, "");
  p.finalize();
}

/**
 * Writes an ACI: the `manifest` entry (validated first: RKT_INVALID_MANIFEST), then `rootfs` and
 * the given entries in order, all under `rootfs/`. A default `rootfs` directory (0755) is written
 * unless the first entry names `.`. Returns the archive as a stream, gzipped if asked; entries are
 * pulled from `entries` as the output is read. Entries escaping the rootfs (`..`) fail the stream
 * with RKT_INVALID_ARGUMENT, as do bad orders and a streamed body without `size`.
 */
export function writeAci(
  manifest: Uint8Array | string,
  entries: AsyncIterable<AciWriteEntry> | Iterable<AciWriteEntry>,
  o: WriteAciOptions = {},
): Readable {
  const raw = typeof manifest === "string" ? new TextEncoder().encode(manifest) : manifest;
  parseImageManifestOrThrow(raw, "ACI manifest to write");
  const p = tarStream().pack();
  writeEntries(p, raw, entries, o.mtime ?? new Date(0)).catch((e: unknown) => p.destroy(e as Error));
  // A Node Readable over streamx's pack stream, so callers get the usual stream type.
  const out = Readable.from(p as AsyncIterable<Buffer>, { objectMode: false });
  if (o.compression !== "gzip") return out;
  const gz = createGzip();
  out.on("error", (e) => gz.destroy(e));
  return out.pipe(gz);
}
