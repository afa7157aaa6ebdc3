// `rkt fetch docker://…` through the built binary (run `npx tsc -b` first) against the real
// docker-registry: the --insecure-options=image gate, stdout and --format json, pull policies, and
// a pull SIGKILLed half-way then restarted, which must resume its ingest rather than start over.
import { spawn, spawnSync } from "node:child_process";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  pushLayout,
  randomLayer,
  runNode,
  useRegistry,
  writeOciLayout,
  type BuiltImage,
  type ChildRun,
} from "@rkt/testkit";

const repo = resolve(import.meta.dirname, "..", "..", "..");
const bin = join(repo, "packages", "cli", "bin", "rkt.js");
const reg = useRegistry({ mode: "plain" });
let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "rkt-pull-cli-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

let n = 0;
function rkt(dir: string, args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, "--dir", dir, ...args], { encoding: "utf8", timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

// Asynchronous: the relay below lives in this process's event loop.
function rktAsync(dir: string, args: string[]): Promise<ChildRun> {
  return runNode(bin, ["--dir", dir, ...args]);
}

async function push(
  layers: Parameters<typeof writeOciLayout>[1]["layers"],
  ref: string,
): Promise<BuiltImage> {
  const dir = join(tmp, `layout-${n++}`);
  const img = await writeOciLayout(dir, { layers });
  await pushLayout(dir, ref, reg());
  return img;
}

function size(img: BuiltImage): number {
  return img.manifestBytes.length + img.config.size + img.layers.reduce((a, l) => a + l.size, 0);
}

interface Summary {
  id: string;
  digests: string[];
  bytes: number;
  bytesDownloaded: number;
  bytesReused: number;
}

describe("rkt fetch docker://", () => {
  it("needs --insecure-options=image, then prints the manifest digest; image list shows it", async () => {
    const img = await push([randomLayer(100_000, { seed: "cli" })], "cli/app:v1");
    const dir = join(tmp, `store-${n++}`);
    const url = `docker://${reg().host}/cli/app:v1`;
    const refused = rkt(dir, ["--insecure-options=http", "fetch", url]);
    expect(refused.code).toBe(254);
    expect(refused.stderr).toMatch(
      /^fetch: no signature policy for docker images: none of .* exists; .*--insecure-options=image\n$/,
    );
    const never = rkt(dir, ["--insecure-options=image,http", "fetch", "--pull-policy=never", url]);
    expect(never.code).toBe(254);
    expect(never.stderr).toContain(
      `unable to fetch docker image from URL "${url}": either image was not found in the store`,
    );
    // Plain HTTP needs --insecure-options=http too.
    const noHttp = rkt(dir, ["--insecure-options=image", "fetch", url]);
    expect(noHttp.code).toBe(254);

    const ok = rkt(dir, ["--insecure-options=image,http", "fetch", url]);
    expect(ok.stderr).not.toMatch(/error/i);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toBe(`${img.descriptor.digest}\n`);
    const list = rkt(dir, ["image", "list", "--no-legend", "--full", "--fields=id,name"]);
    expect(list.stdout.trim().split(/\s+/)).toEqual([img.descriptor.digest, `${reg().host}/cli/app:v1`]);

    const warm = rkt(dir, ["--insecure-options=image,http", "fetch", "--format=json", url]);
    expect(warm.code).toBe(0);
    const [s] = JSON.parse(warm.stdout) as Summary[];
    expect(s).toMatchObject({ id: img.descriptor.digest, bytesDownloaded: 0, bytesReused: size(img) });
    const stored = rkt(dir, ["--insecure-options=image", "fetch", "--pull-policy=never", url]);
    expect(stored.stdout).toBe(`${img.descriptor.digest}\n`);

    const bad = rkt(dir, ["--insecure-options=image,http", "fetch", "--parallel=0", url]);
    expect(bad.code).toBe(254);
    expect(bad.stderr).toContain(`invalid argument "0" for "--parallel" flag: must be 1..64`);
    const other = join(tmp, `store-${n++}`);
    const serial = rkt(other, ["--insecure-options=image,http", "fetch", "--parallel", "1", url]);
    expect(serial.code).toBe(0);
    expect(serial.stdout).toBe(`${img.descriptor.digest}\n`);
    expect(serial.stderr).toContain(`Downloaded ${img.layers[0]!.digest} (${img.layers[0]!.size} bytes)`);
  }, 120_000);

  it("a pull killed half-way resumes its ingest: ≤ 1.05× the image size downloaded in total", async () => {
    const layerBytes = 64 << 20;
    const img = await push(
      [randomLayer(layerBytes, { seed: "big", compression: "none" }), randomLayer(1000, { seed: "small" })],
      "big/app:v1",
    );
    const total = size(img);
    // A loopback relay in front of the registry that counts every byte sent to the client and,
    // while `hold` is set, stops relaying once half the image went through: the child is then
    // killed at a known point instead of racing a loopback download.
    let relayed = 0;
    let hold = true;
    const held: Socket[] = [];
    const [host, port] = reg().host.split(":") as [string, string];
    const relay: Server = createServer((client) => {
      const up = createConnection({ host, port: Number(port) });
      client.pipe(up);
      up.on("data", (c: Buffer) => {
        relayed += c.length;
        if (!client.write(c)) up.pause();
        if (hold && relayed > total / 2) {
          up.pause();
          held.push(up);
        }
      });
      client.on("drain", () => {
        if (!(hold && relayed > total / 2)) up.resume();
      });
      up.on("end", () => client.end());
      const drop = (): void => {
        up.destroy();
        client.destroy();
      };
      up.on("error", drop);
      client.on("error", drop);
      client.on("close", drop);
    });
    await new Promise<void>((ok) => relay.listen(0, "127.0.0.1", ok));
    const via = `127.0.0.1:${(relay.address() as AddressInfo).port}`;
    const url = `docker://${via}/big/app:v1`;
    const dir = join(tmp, `store-${n++}`);
    try {
      const child = spawn(
        process.execPath,
        [bin, "--dir", dir, "--insecure-options=image,http", "fetch", url],
        {
          stdio: "ignore",
        },
      );
      const exited = new Promise<void>((ok) => child.on("exit", () => ok()));
      // Wait until the store's ingest holds (nearly) everything relayed so far, then kill.
      const ingest = join(dir, "cas", "ingest");
      const ingested = async (): Promise<number> => {
        let sum = 0;
        for (const d of await readdir(ingest).catch(() => [])) {
          sum += (await stat(join(ingest, d, "data")).catch(() => ({ size: 0 }))).size;
        }
        return sum;
      };
      // Buffers between the socket and the file hold up to a few MiB, so wait for the relay to
      // stop and the ingest to stop growing rather than for an exact size.
      const deadline = Date.now() + 60_000;
      let kept = -1;
      for (;;) {
        await new Promise((ok) => setTimeout(ok, 200));
        const now = await ingested();
        if ((relayed > total / 2 && now > 0 && now === kept) || Date.now() > deadline) break;
        kept = now;
      }
      expect(kept).toBeGreaterThan(total / 4);
      child.kill("SIGKILL");
      await exited;
      const first = relayed;
      hold = false;
      for (const s of held) s.destroy();

      const again = await rktAsync(dir, ["--insecure-options=image,http", "fetch", "--format=json", url]);
      expect(again.stderr).not.toMatch(/error/i);
      expect(again.code).toBe(0);
      const [s] = JSON.parse(again.stdout) as Summary[];
      expect(s!.id).toBe(img.descriptor.digest);
      // The kept prefix was reused, not fetched again.
      expect(s!.bytesReused).toBeGreaterThanOrEqual(kept);
      expect(s!.bytesDownloaded).toBeLessThanOrEqual(total - kept);
      const all = relayed;
      if (process.env["RKT_PULL_DEBUG"] !== undefined) console.log({ total, kept, first, all, s });
      expect(all).toBeLessThanOrEqual(1.05 * total);
      expect(first).toBeGreaterThan(total / 2);
      const fsck = rkt(dir, ["image", "fsck", "--format", "json"]);
      expect((JSON.parse(fsck.stdout) as { ok: boolean }).ok).toBe(true);
    } finally {
      hold = false;
      await new Promise((ok) => relay.close(ok));
    }
  }, 180_000);
});
