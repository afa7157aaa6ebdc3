// Verification streams the signed bytes: memory must not grow with the image size.
import { join } from "node:path";
import { spawn } from "node:child_process";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { KeyStore, verifyDetached } from "@rkt/trust";
import { afterAll, expect, it } from "vitest";
import { removeTempDirs, tempDir } from "./tmp.js";

afterAll(removeTempDirs);
import { disposeGpgs, makeGpg } from "./gpg.js";

afterAll(disposeGpgs);

const chunk = 1 << 20;
const total = 200; // MiB

function* data(): Generator<Uint8Array> {
  const buf = Buffer.alloc(chunk);
  for (let i = 0; i < total; i++) {
    buf.fill(i & 0xff);
    yield Buffer.from(buf); // a fresh chunk each time, as a file read would give
  }
}

it("verifies a 200 MiB input with bounded memory", { timeout: 180_000 }, async () => {
  // gpg signs in its own process, so this process has never held the data when measuring starts.
  const gpg = makeGpg();
  const fp = gpg.genKey("Big <big@example.com>", "ed25519");
  const child = spawn(
    "gpg",
    ["--batch", "--homedir", gpg.home, "--local-user", fp.toUpperCase(), "--detach-sign", "--output", "-"],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  const out: Buffer[] = [];
  child.stdout.on("data", (b: Buffer) => out.push(b));
  const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
  await pipeline(Readable.from(data()), child.stdin);
  expect(await exited).toBe(0);
  const signature = Buffer.concat(out);
  const root = tempDir("rkt-trust-big-");
  const store = new KeyStore({ systemConfigDir: join(root, "s"), localConfigDir: join(root, "l") });
  await store.addKey(gpg.exportKey(fp.toUpperCase()), { root: true });

  const before = process.memoryUsage().rss;
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  let bytes = 0;
  try {
    const v = await verifyDetached({
      name: "example.com/big",
      open: () =>
        Promise.resolve(
          Readable.from(
            (function* () {
              for (const c of data()) {
                bytes += c.length;
                yield c;
              }
            })(),
          ),
        ),
      signature,
      keystore: store,
    });
    expect(v.fingerprint).toBe(fp);
  } finally {
    clearInterval(sampler);
  }
  peak = Math.max(peak, process.memoryUsage().rss);
  expect(bytes).toBe(total * chunk);
  // The input is 200 MiB; buffering it would grow RSS by at least that much.
  expect(peak - before).toBeLessThan(64 * chunk);
});
