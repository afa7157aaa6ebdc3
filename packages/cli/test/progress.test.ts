// The CLI's one progress renderer: its line, its pacing on and off a terminal, and a real
// terminal (util-linux `script` gives the command a pty) seeing a local oci: import progress.
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { PassThrough } from "node:stream";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseDigest } from "@rkt/oci";
import { randomLayer, writeOciLayout } from "@rkt/testkit";
import { Progress } from "../src/progress.js";
import { runRkt } from "./helpers.js";

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, "..", "..", "..");
const bin = join(repo, "packages", "cli", "bin", "rkt.js");
const built = existsSync(join(repo, "packages", "cli", "dist", "main.js"));
const a = parseDigest(`sha256:${"a".repeat(64)}`);
const b = parseDigest(`sha256:${"b".repeat(64)}`);
const MiB = 1 << 20;
/** What a redraw starts with: carriage return, erase to the end of the line. */
const erase = "\r\x1b[K";

function collect(): { out: PassThrough; text: () => string } {
  const out = new PassThrough();
  let text = "";
  out.on("data", (c: Buffer) => (text += c.toString()));
  return { out, text: () => text };
}

describe("Progress", () => {
  it("sums items into one line with rate and ETA (a resumed prefix is not transfer)", () => {
    let now = 0;
    const p = new Progress(new PassThrough(), { verb: "Downloading", tty: false, now: () => now });
    expect(p.line()).toBe("Downloading 0 blobs: 0.0 MiB / 0.0 MiB");
    now = 1000;
    p.blob({ digest: a, bytes: 4 * MiB, total: 8 * MiB }); // resumed at 4 MiB
    expect(p.line()).toBe("Downloading 1 blob: 4.0 MiB / 8.0 MiB");
    p.blob({ digest: a, bytes: 6 * MiB, total: 8 * MiB });
    p.blob({ digest: b, bytes: 0, total: 2 * MiB });
    p.blob({ digest: b, bytes: 2 * MiB, total: 2 * MiB });
    now = 2000;
    // 4 MiB moved in 2 s: 2 MiB/s; 2 MiB left: 1 s.
    expect(p.line()).toBe("Downloading 2 blobs: 8.0 MiB / 10.0 MiB, 2.0 MiB/s, ETA 1s");
    const acis = new Progress(new PassThrough(), { verb: "Importing", tty: false, now: () => 0 });
    acis.update("/x.aci", 1, 2, "ACI");
    expect(acis.line()).toBe("Importing ACI: 0.0 MiB / 0.0 MiB");
  });

  it("on a terminal redraws in place at most ten times a second, fits the width, erases at the end", () => {
    let now = 0;
    const { out, text } = collect();
    const p = new Progress(out, { verb: "Importing", tty: true, columns: 30, now: () => now });
    p.blob({ digest: a, bytes: 1 * MiB, total: 4 * MiB });
    now = 50;
    p.blob({ digest: a, bytes: 2 * MiB, total: 4 * MiB }); // too soon: not drawn
    now = 150;
    p.blob({ digest: a, bytes: 3 * MiB, total: 4 * MiB });
    now = 160;
    p.blob({ digest: a, bytes: 4 * MiB, total: 4 * MiB }); // the last one is always drawn
    p.println("a line of the command's own");
    p.end();
    const draws = text()
      .split("\r\x1b[K")
      .filter((s) => s !== "");
    expect(draws).toEqual([
      "Importing 1 blob: 1.0 MiB / 4",
      "Importing 1 blob: 3.0 MiB / 4",
      "Importing 1 blob: 4.0 MiB / 4",
      "a line of the command's own\nImporting 1 blob: 4.0 MiB / 4",
    ]);
    expect(draws.every((d) => d.split("\n").every((l) => l.length < 30))).toBe(true);
    expect(text().endsWith("\r\x1b[K")).toBe(true);
  });

  it("without a terminal prints a plain line only now and then, and done lines when asked", () => {
    let now = 0;
    const { out, text } = collect();
    const p = new Progress(out, {
      verb: "Downloading",
      tty: false,
      now: () => now,
      doneLine: (k, n) => `Downloaded ${k} (${n} bytes)`,
    });
    p.blob({ digest: a, bytes: 1, total: 10 });
    now = 9_000;
    p.blob({ digest: a, bytes: 5, total: 10 });
    expect(text()).toBe("");
    now = 10_500;
    p.blob({ digest: a, bytes: 10, total: 10 });
    p.blob({ digest: a, bytes: 10, total: 10 });
    expect(text().split("\n")).toEqual([
      `Downloaded ${a} (10 bytes)`,
      expect.stringMatching(/^Downloading 1 blob: 0\.0 MiB \/ 0\.0 MiB, /),
      "",
    ]);
    expect(text()).not.toContain("\r");
  });

  it("with quiet prints nothing", () => {
    const { out, text } = collect();
    const p = new Progress(out, { verb: "Importing", tty: true, quiet: true });
    p.blob({ digest: a, bytes: 1, total: 1 });
    p.end();
    expect(text()).toBe("");
  });
});

describe("a terminal", () => {
  let tmp: string;
  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), "rkt-progress-"));
    // Two layers of 12 MiB of random (incompressible) bytes: a multi-MiB layout.
    await writeOciLayout(join(tmp, "big"), {
      layers: [
        randomLayer(12 * MiB, { seed: "one", files: 3 }),
        randomLayer(12 * MiB, { seed: "two", files: 3 }),
      ],
    });
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  // `script -qfec CMD /dev/null`: CMD runs on a pty; what it writes there comes out on stdout.
  async function onPty(args: string[], name: string): Promise<string> {
    const cmd = [process.execPath, bin, `--dir=${join(tmp, name)}`, ...args].map((w) => `'${w}'`).join(" ");
    const { stdout } = await run("script", ["-qfec", cmd, "/dev/null"], {
      env: { ...process.env, TERM: "xterm", NO_COLOR: "1" },
    });
    return stdout;
  }

  it.skipIf(!built)("sees the progress of a local oci: import, drawn in place and erased", async () => {
    const out = await onPty(["fetch", "--no-render", `oci:${join(tmp, "big")}:latest`], "store-a");
    const draws = out.split(erase).filter((s) => s.startsWith("Importing"));
    expect(draws.length).toBeGreaterThan(0);
    expect(draws[draws.length - 1]).toMatch(/^Importing 3 blobs: 24\.0 MiB \/ 24\.0 MiB/);
    for (const d of draws)
      expect(d).toMatch(/^Importing \d+ blobs?: \d+\.\d MiB \/ \d+\.\d MiB(, [\d.]+ MiB\/s, ETA \d+s)?$/);
    // The ID follows on a clean line.
    expect(out.split(erase).some((s) => /^sha256:[0-9a-f]{64}\r?\n/.test(s))).toBe(true);
  });

  it.skipIf(!built)(
    "--quiet draws nothing; without a terminal a short import prints no progress",
    async () => {
      const q = await onPty(["fetch", "--quiet", "--no-render", `oci:${join(tmp, "big")}:latest`], "store-b");
      expect(q).not.toContain("Importing");
      expect(q).toMatch(/^sha256:[0-9a-f]{64}\r?\n$/);
      const plain = await runRkt(
        ["--dir", join(tmp, "store-c"), "fetch", "--no-render", `oci:${join(tmp, "big")}:latest`],
        {
          cwd: tmp,
        },
      );
      expect(plain).toMatchObject({ code: 0, stderr: "" });
    },
  );

  it.skipIf(!built)("sees the progress of a render and an export", async () => {
    const dir = join(tmp, "store-d");
    await run(process.execPath, [
      bin,
      `--dir=${dir}`,
      "fetch",
      "--quiet",
      "--no-render",
      `oci:${join(tmp, "big")}:latest`,
    ]);
    const r = await onPty(
      ["image", "render", "--flatten", "--rootfs-only", "big", join(tmp, "out")],
      "store-d",
    );
    expect(r.split(erase).some((s) => s.startsWith("Extracting 2 blobs: 24.0 MiB / 24.0 MiB"))).toBe(true);
    const e = await onPty(["image", "export", "big", join(tmp, "big.tar")], "store-d");
    expect(e.split(erase).some((s) => s.startsWith("Exporting 3 blobs: 24.0 MiB / 24.0 MiB"))).toBe(true);
  });
});
