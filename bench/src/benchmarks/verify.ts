// Signature verification of registry pulls (issue 4): an 8 MiB two-layer image signed by
// `skopeo standalone-sign` into a file lookaside, admitted by a signedBy policy.json.
// - verified cold pull: `rkt fetch` under the policy vs `skopeo copy --policy` (which verifies
//   too) vs `rkt fetch --insecure-options=image` (the cost of verifying);
// - warm re-fetch with an unchanged tag: verified vs unverified (the fixed cost per fetch: the
//   policy, the key, openpgp and one signature read).
import { execFileSync, spawnSync } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { tmpdir } from "node:os";
import { pathToFileURL } from "node:url";
import { pushLayout, randomLayer, startRegistry, writeOciLayout } from "@rkt/testkit";
import { benchSigner } from "../gpg-signer.js";
import { bench, spawnMeasured } from "../harness.js";

const rkt = resolve(import.meta.dirname, "..", "..", "..", "packages", "cli", "bin", "rkt.js");

export async function run(): Promise<void> {
  const help = spawnSync(process.execPath, [rkt, "fetch", "--help"], { encoding: "utf8" }).stdout;
  const fetchCmd = help.includes("--no-render") ? ["fetch", "--no-render"] : ["fetch"];
  const tmp = await mkdtemp(join(tmpdir(), "rkt-bench-verify-"));
  const reg = await startRegistry({ mode: "plain" });
  const gnupg = join(tmp, "gnupg");
  try {
    const layout = join(tmp, "layout");
    const img = await writeOciLayout(layout, {
      layers: [randomLayer(4 << 20, { seed: "verify-1" }), randomLayer(4 << 20, { seed: "verify-2" })],
    });
    await pushLayout(layout, "bench/signed:1", reg);
    const ref = `${reg.host}/bench/signed:1`;

    const { gpg, fingerprint: fp } = await benchSigner(gnupg);
    const pub = join(tmp, "signer.gpg");
    await writeFile(pub, gpg(["--export", "bench@example.com"]));
    const lookaside = join(tmp, "lookaside");
    const sigDir = join(lookaside, `bench/signed@${img.descriptor.digest.replace(":", "=")}`);
    await mkdir(sigDir, { recursive: true });
    await writeFile(join(tmp, "manifest.json"), img.manifestBytes);
    execFileSync(
      "skopeo",
      ["standalone-sign", "--output", join(sigDir, "signature-1"), join(tmp, "manifest.json"), ref, fp],
      { env: { ...process.env, GNUPGHOME: gnupg }, stdio: "pipe" },
    );
    // One config dir serves both tools: rkt reads <local-config>/{policy.json,registries.d}.
    const etc = join(tmp, "etc");
    await mkdir(join(etc, "registries.d"), { recursive: true });
    await writeFile(
      join(etc, "registries.d", "lookaside.yaml"),
      `default-docker:\n  lookaside: ${pathToFileURL(lookaside).href}\n`,
    );
    await writeFile(
      join(etc, "policy.json"),
      JSON.stringify({
        default: [{ type: "reject" }],
        transports: { docker: { [reg.host]: [{ type: "signedBy", keyType: "GPGKeys", keyPath: pub }] } },
      }),
    );
    const rktArgs = (dir: string, insecure: string): string[] => [
      rkt,
      "--dir",
      dir,
      "--local-config",
      etc,
      "--system-config",
      join(tmp, "lib"),
      `--insecure-options=${insecure}`,
      ...fetchCmd,
      `docker://${ref}`,
    ];
    const fresh = (cmd: string, args: (dir: string) => string[]) => async () => {
      const dir = await mkdtemp(join(tmp, "run-"));
      try {
        return await spawnMeasured(cmd, args(dir));
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    };
    await bench("verified cold pull, 8 MiB signed image: rkt fetch (policy) vs skopeo copy --policy", {
      ours: fresh(process.execPath, (dir) => rktArgs(dir, "http")),
      peers: {
        "skopeo copy --policy": fresh("skopeo", (dir) => [
          "--policy",
          join(etc, "policy.json"),
          "--registries.d",
          join(etc, "registries.d"),
          "copy",
          "--quiet",
          // The source is still verified; an oci: destination just cannot hold the signature.
          "--remove-signatures",
          "--src-tls-verify=false",
          `docker://${ref}`,
          `oci:${join(dir, "layout")}:1`,
        ]),
        "rkt --insecure-options=image": fresh(process.execPath, (dir) => rktArgs(dir, "http,image")),
      },
      runs: 5,
      warmup: 1,
    });
    const warm = await mkdtemp(join(tmp, "warm-"));
    await spawnMeasured(process.execPath, rktArgs(warm, "http"));
    await bench("warm re-fetch, unchanged tag: verified vs --insecure-options=image (whole rkt command)", {
      ours: () => spawnMeasured(process.execPath, rktArgs(warm, "http")),
      peers: {
        "rkt --insecure-options=image": () => spawnMeasured(process.execPath, rktArgs(warm, "http,image")),
      },
      runs: 7,
      warmup: 1,
    });
  } finally {
    try {
      execFileSync("gpgconf", ["--homedir", gnupg, "--kill", "gpg-agent"], { stdio: "ignore" });
    } catch {
      // no agent started
    }
    await reg.stop();
    await rm(tmp, { recursive: true, force: true });
  }
}
