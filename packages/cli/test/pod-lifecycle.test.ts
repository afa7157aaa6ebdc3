// A running pod's lifecycle with the real runc and the fly stage1: the app's exit status becomes
// rkt's, `rkt enter` runs a command inside the app, `rkt stop` ends it (128 + signal), as root.
// The image is a static binary compiled here: `/sleeper exit N` exits N, `/sleeper` prints "up"
// and waits for a signal.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { createWriteStream, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { pipeline } from "node:stream/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeAci } from "@rkt/appc";
import { runRkt, type RktRun } from "./helpers.js";

const source = `#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int c, char **v) {
  if (c > 2 && !strcmp(v[1], "exit")) return atoi(v[2]);
  write(1, "up\\n", 3);
  for (;;) pause();
}
`;

const rktBin = fileURLToPath(new URL("../bin/rkt.js", import.meta.url));

const canBuild =
  process.getuid?.() === 0 && spawnSync("gcc", ["--version"], { stdio: "ignore" }).status === 0;
let tmp: string;
let aci: string;
let n = 0;

function rkt(dir: string, args: string[]): Promise<RktRun> {
  return runRkt(["--dir", dir, "--insecure-options=image", ...args], { cwd: tmp });
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-pods-"));
  if (!canBuild) return;
  writeFileSync(join(tmp, "sleeper.c"), source);
  execFileSync("gcc", ["-static", "-Os", "-o", join(tmp, "sleeper"), join(tmp, "sleeper.c")]);
  const manifest = {
    acKind: "ImageManifest",
    acVersion: "0.8.11",
    name: "example.com/sleeper",
    labels: [
      { name: "os", value: "linux" },
      { name: "arch", value: "amd64" },
    ],
    app: { exec: ["/sleeper"], user: "0", group: "0" },
  };
  aci = join(tmp, "sleeper.aci");
  const body = readFileSync(join(tmp, "sleeper"));
  await pipeline(
    writeAci(JSON.stringify(manifest), [
      { header: { name: "sleeper", type: "file", mode: 0o755, size: body.length }, body },
    ]),
    createWriteStream(aci),
  );
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Starts `rkt run` in process; resolves the UUID once `rkt enter` reaches the app. */
async function startPod(dir: string, runFlags: string[]): Promise<{ uuid: string; done: Promise<RktRun> }> {
  const file = join(tmp, `uuid${n++}`);
  const done = rkt(dir, ["run", `--uuid-file-save=${file}`, ...runFlags, aci]);
  for (let i = 0; i < 200; i++) {
    if (existsSync(file)) {
      const uuid = readFileSync(file, "utf8").trim();
      const probe = await rkt(dir, ["enter", uuid, "/sleeper", "exit", "3"]);
      if (probe.code === 3) return { uuid, done };
    }
    await sleep(50);
  }
  throw new Error(`pod never became enterable: ${(await Promise.race([done, sleep(10)]))?.stderr}`);
}

describe.skipIf(!canBuild)("a running pod", () => {
  it("passes the app's exit status through as rkt's", async () => {
    const dir = join(tmp, `d${n++}`);
    const r = await rkt(dir, ["run", aci, "--", "exit", "7"]);
    expect(r.code, r.stderr).toBe(7);
    const uuid = JSON.parse((await rkt(dir, ["list", "--format=json"])).stdout)[0].name as string;
    expect((await rkt(dir, ["status", uuid])).stdout).toContain("app-sleeper=7\n");
  });

  it("runs a pod of two apps (shared namespaces); the failing app's status is rkt's", async () => {
    const dir = join(tmp, `d${n++}`);
    const r = await rkt(dir, [
      "run",
      aci,
      "--name=first",
      "--",
      "exit",
      "0",
      "---",
      aci,
      "--name=second",
      "--",
      "exit",
      "5",
    ]);
    expect(r.code, r.stderr).toBe(5);
    const uuid = JSON.parse((await rkt(dir, ["list", "--format=json"])).stdout)[0].name as string;
    const status = (await rkt(dir, ["status", uuid])).stdout;
    expect(status).toContain("app-first=0\n");
    expect(status).toContain("app-second=5\n");
  });

  it("runc: list shows it running, enter runs inside it, stop --force ends it with 137", async () => {
    const dir = join(tmp, `d${n++}`);
    const { uuid, done } = await startPod(dir, []);
    const listed = JSON.parse((await rkt(dir, ["list", "--format=json"])).stdout) as { state: string }[];
    expect(listed.map((p) => p.state)).toEqual(["running"]);
    expect((await rkt(dir, ["rm", uuid])).code).toBe(254);
    const stop = await rkt(dir, ["stop", "--force", uuid]);
    expect(stop.code, stop.stderr).toBe(0);
    const r = await done;
    expect(r.code).toBe(137);
    expect(r.stdout).toBe("up\n");
    expect((await rkt(dir, ["status", "--wait=5s", uuid])).stdout).toContain("state=exited\n");
  });

  it("fly: stop sends SIGTERM (143)", async () => {
    const dir = join(tmp, `d${n++}`);
    const { uuid, done } = await startPod(dir, ["--stage1=fly"]);
    expect((await rkt(dir, ["stop", uuid])).code).toBe(0);
    expect((await done).code).toBe(143);
    expect((await rkt(dir, ["gc", "--grace-period=0s"])).code).toBe(0);
    expect(JSON.parse((await rkt(dir, ["list", "--format=json"])).stdout)).toEqual([]);
  });

  it("image gc keeps what a prepared pod holds; a SIGKILLed rkt run leaves nothing gc cannot clean", async () => {
    const dir = join(tmp, `d${n++}`);
    const prep = await rkt(dir, ["prepare", aci, "--", "exit", "0"]);
    expect(prep.code, prep.stderr).toBe(0);
    const gc = await rkt(dir, ["image", "gc", "--grace-period=0s"]);
    expect(gc.code, gc.stderr).toBe(0);
    const images = JSON.parse((await rkt(dir, ["image", "list", "--format=json"])).stdout) as unknown[];
    expect(images).toHaveLength(1);
    expect((await rkt(dir, ["run-prepared", prep.stdout.trim()])).code).toBe(0);

    const file = join(tmp, `uuid${n++}`);
    const child = spawn(
      process.execPath,
      [rktBin, "--dir", dir, "--insecure-options=image", "run", `--uuid-file-save=${file}`, aci],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    await new Promise<void>((resolve) => child.stdout.once("data", () => resolve()));
    child.kill("SIGKILL");
    await new Promise((resolve) => child.once("exit", resolve));
    const uuid = readFileSync(file, "utf8").trim();
    expect(readFileSync("/proc/self/mountinfo", "utf8")).toContain(uuid);

    const pods = await rkt(dir, ["gc", "--grace-period=0s"]);
    expect(pods.code, pods.stderr).toBe(0);
    expect(pods.stdout).toContain(uuid);
    expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(uuid);
    expect(spawnSync("sh", ["-c", `ls -d ${dir}/pods/*/* 2>/dev/null`]).stdout.toString()).toBe("");
    expect((await rkt(dir, ["image", "gc", "--grace-period=0s"])).code).toBe(0);
    const fsck = await rkt(dir, ["image", "fsck"]);
    expect(fsck.code, fsck.stdout + fsck.stderr).toBe(0);
    // An empty list is `null`, as rkt (Go) prints it.
    expect(JSON.parse((await rkt(dir, ["image", "list", "--format=json"])).stdout)).toBeNull();
  });
});
