// Property tests: the sanitizers always yield valid names, app strings round-trip, and any set
// of rootfs entries survives writeAci -> readAci with the image ID of the exact bytes.
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import fc from "fast-check";
import { isRktError } from "@rkt/oci";
import { describe, expect, it } from "vitest";
import {
  formatAppString,
  isACIdentifier,
  isACName,
  parseAppString,
  readAci,
  sanitizeACIdentifier,
  sanitizeACName,
  writeAci,
} from "@rkt/appc";

function validOrRefused(f: () => string, valid: (s: string) => boolean): boolean {
  try {
    return valid(f());
  } catch (e) {
    return isRktError(e);
  }
}

const identifier = fc
  .array(fc.stringMatching(/^[a-z0-9]{1,6}$/), { minLength: 1, maxLength: 4 })
  .chain((parts) =>
    fc
      .array(fc.constantFrom("-", ".", "_", "~", "/"), {
        minLength: parts.length - 1,
        maxLength: parts.length - 1,
      })
      .map((seps) => parts.map((p, i) => (i === 0 ? p : `${seps[i - 1]!}${p}`)).join("")),
  );

describe("properties", () => {
  it("sanitizers yield valid names or refuse", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 30 }), (s) => {
        expect(validOrRefused(() => sanitizeACName(s), isACName)).toBe(true);
        expect(validOrRefused(() => sanitizeACIdentifier(s), isACIdentifier)).toBe(true);
      }),
    );
  });

  it("sanitizers leave valid names alone", () => {
    fc.assert(
      fc.property(identifier, (s) => {
        expect(sanitizeACIdentifier(s)).toBe(s);
      }),
    );
  });

  it("app strings round-trip", () => {
    const value = fc.stringMatching(/^[A-Za-z0-9 .+\-_/=&%?]{0,10}$/);
    fc.assert(
      fc.property(
        identifier,
        fc.option(value, { nil: undefined }),
        fc.dictionary(
          identifier.filter((k) => k !== "name" && k !== "version"),
          value,
          { maxKeys: 3 },
        ),
        (name, version, extra) => {
          const labels = new Map<string, string>();
          if (version !== undefined) labels.set("version", version);
          for (const [k, v] of Object.entries(extra)) labels.set(k, v);
          const app = parseAppString(formatAppString({ name, labels }));
          expect(app.name).toBe(name);
          expect(Object.fromEntries(app.labels)).toEqual(Object.fromEntries(labels));
        },
      ),
    );
  });

  it("writeAci -> readAci keeps every entry and hashes the exact bytes", async () => {
    const manifest = JSON.stringify({ acKind: "ImageManifest", acVersion: "0.8.11", name: "x" });
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.tuple(fc.stringMatching(/^[a-z]{1,8}$/), fc.uint8Array({ maxLength: 3000 })), {
          selector: ([n]) => n,
          maxLength: 6,
        }),
        async (files) => {
          const chunks: Buffer[] = [];
          const stream = writeAci(
            manifest,
            files.map(([name, body]) => ({ header: { name: `d/${name}`, type: "file" as const }, body })),
          );
          for await (const c of stream) chunks.push(c as Buffer);
          const tar = Buffer.concat(chunks);
          const got: [string, string][] = [];
          const r = await readAci(
            Readable.from([tar]),
            async (e, b) => {
              const parts: Buffer[] = [];
              for await (const c of b) parts.push(c as Buffer);
              if (e.header.type === "file") got.push([e.name, Buffer.concat(parts).toString("hex")]);
            },
            { hash: true },
          );
          expect(got).toEqual(files.map(([n, b]) => [`rootfs/d/${n}`, Buffer.from(b).toString("hex")]));
          expect(r.sha512Hex).toBe(createHash("sha512").update(tar).digest("hex"));
        },
      ),
      { numRuns: 25 },
    );
  });
});
