// Signed bundles for air gaps (issue 13), the Debian fixture signed by a GnuPG key, each against
// skopeo in the same run (goal ≤ 1.0× each):
// - save: `rkt image save --bundle` of the stored image (the image, its simple-signing signature
//   read from a lookaside, the signer's key) vs `skopeo copy oci:… oci-archive:…` plus a copy of
//   the lookaside signature beside it (an oci-archive cannot hold one);
// - load: `rkt image load` into a fresh store, admitted by a signedBy policy.json, vs
//   `skopeo standalone-verify` of that signature plus `skopeo copy oci-archive:… oci:…` (skopeo
//   cannot verify an archive's image through a policy: the archive carries no signature).
import { execFileSync, spawnSync } from "node:child_process";
import { statSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { cacheDir, ensureFixture } from "../fixtures.js";
import { benchSigner } from "../gpg-signer.js";
import { bench, spawnMeasured, type BenchResult } from "../harness.js";

const rkt = resolve(import.meta.dirname, "..", "..", "..", "packages", "cli", "bin", "rkt.js");

function report(r: BenchResult): void {
  const [ours, peer] = r.subjects;
  const ratio = ours!.median / peer!.median;
  const rss = (s: typeof ours) => `${((s!.peakRssKiB ?? 0) / 1024).toFixed(0)} MiB`;
  process.stdout.write(
    `${r.name}: ours/skopeo ${ratio.toFixed(2)} (goal ≤ 1.00: ${ratio <= 1 ? "ok" : "MISSED"}), peak RSS ours ${rss(ours)}, skopeo ${rss(peer)}\n`,
  );
}

export async function run(): Promise<void> {
  const fixture = await ensureFixture("debian");
  const scratch = join(cacheDir(), "scratch");
  await mkdir(scratch, { recursive: true });
  const tmp = await mkdtemp(join(scratch, "rkt-bench-bundle-"));
  const gnupg = join(tmp, "gnupg");
  try {
    const { gpg, fingerprint: fp } = await benchSigner(gnupg);
    const priv = join(tmp, "signer.key");
    await writeFile(priv, gpg(["--armor", "--export-secret-keys", "bench@example.com"]));
    const pub = join(tmp, "signer.pub");
    await writeFile(pub, gpg(["--armor", "--export", "bench@example.com"]));

    // The sending machine: the fixture stored under a registry name and signed into a lookaside.
    const name = "bench.example/debian:bookworm";
    const sender = [
      "--dir",
      join(tmp, "sender"),
      "--local-config",
      join(tmp, "sender-etc"),
      "--system-config",
      join(tmp, "lib"),
    ];
    const sh = (args: string[]): string => {
      const r = spawnSync(process.execPath, [rkt, ...sender, ...args], { encoding: "utf8" });
      if (r.status !== 0) throw new Error(`rkt ${args.join(" ")}: ${r.stderr}`);
      return r.stdout;
    };
    sh(["image", "copy", "-q", `oci:${fixture.layoutDir}:${fixture.layoutRef}`, `rkt:${name}`]);
    const lookaside = join(tmp, "lookaside");
    const sig = sh(["image", "sign", name, "--key", priv, "--lookaside", lookaside]).trim();
    // The receiving machine's trust: only this key, for this repository.
    const etc = join(tmp, "receiver-etc");
    await mkdir(etc, { recursive: true });
    await writeFile(
      join(etc, "policy.json"),
      JSON.stringify({
        default: [{ type: "reject" }],
        transports: {
          docker: { "bench.example/debian": [{ type: "signedBy", keyType: "GPGKeys", keyPath: pub }] },
        },
      }),
    );
    const ours = join(tmp, "rkt-bundle.tar");
    const theirs = join(tmp, "skopeo.tar");
    report(
      await bench("save: rkt image save --bundle vs skopeo copy to an oci-archive (+ the signature file)", {
        ours: () =>
          spawnMeasured(process.execPath, [
            rkt,
            ...sender,
            "image",
            "save",
            "--bundle",
            "-q",
            "--overwrite",
            "--lookaside",
            lookaside,
            "-o",
            ours,
            name,
          ]),
        peers: {
          "skopeo copy": async () => {
            await rm(theirs, { force: true });
            const r = await spawnMeasured("skopeo", [
              "copy",
              "--quiet",
              `oci:${fixture.layoutDir}:${fixture.layoutRef}`,
              `oci-archive:${theirs}:${name}`,
            ]);
            await copyFile(sig, `${theirs}.signature-1`);
            return r;
          },
        },
        runs: 5,
      }),
    );
    const manifest = join(fixture.layoutDir, "blobs", "sha256", fixture.digest.slice(7));
    const fresh = (prefix: string): Promise<string> => mkdtemp(join(tmp, prefix));
    const loads: string[] = [];
    report(
      await bench(
        "load: rkt image load (policy.json) vs skopeo standalone-verify + copy from the oci-archive",
        {
          ours: async () => {
            const dir = await fresh("load-rkt-");
            loads.push(dir);
            return spawnMeasured(process.execPath, [
              rkt,
              "--dir",
              dir,
              "--local-config",
              etc,
              "--system-config",
              join(tmp, "lib"),
              "image",
              "load",
              "-q",
              ours,
            ]);
          },
          peers: {
            "skopeo verify + copy": async () => {
              const dir = await fresh("load-skopeo-");
              loads.push(dir);
              const script = [
                `skopeo standalone-verify '${manifest}' '${name}' '${fp}' '${theirs}.signature-1' >/dev/null`,
                `skopeo copy --quiet 'oci-archive:${theirs}:${name}' 'oci:${join(dir, "layout")}:bookworm'`,
              ].join(" && ");
              return spawnMeasured("sh", ["-c", script], { env: { ...process.env, GNUPGHOME: gnupg } });
            },
          },
          runs: 5,
        },
      ),
    );
    const mib = (f: string) => `${(statSync(f).size / 2 ** 20).toFixed(1)} MiB`;
    process.stdout.write(
      `bundle: fixture ${(fixture.bytes / 2 ** 20).toFixed(1)} MiB of layers; rkt bundle ${mib(ours)}, skopeo archive ${mib(theirs)}\n`,
    );
    for (const d of loads) await rm(d, { recursive: true, force: true });
  } finally {
    try {
      execFileSync("gpgconf", ["--homedir", gnupg, "--kill", "gpg-agent"], { stdio: "ignore" });
    } catch {
      // no agent started
    }
    await rm(tmp, { recursive: true, force: true });
  }
}
