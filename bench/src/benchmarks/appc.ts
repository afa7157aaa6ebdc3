// appc fetch over https (issue 5): a 128 MiB uncompressed ACI served by the testkit's appc server
// on loopback (TLS with a throwaway CA), fetched by `rkt fetch --insecure-options=image
// --no-render https://…/big.aci` into a fresh store (download into a resumable ingest, then the
// import: sha512 of every byte, tar read, write, fsync) vs `curl` of the same URL plus
// `sha512sum` of the file (download and one hash: a floor, nothing stored or parsed). Then a warm
// re-fetch of the unchanged URL (one conditional GET answered 304, no ACI byte) vs `curl` of a
// one-byte file (one https request from a fresh process).
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buffer } from "node:stream/consumers";
import { writeAci } from "@rkt/appc";
import { startAppcServer } from "@rkt/testkit";
import { bench, rktBin, spawnMeasured, withBaseline } from "../harness.js";

const rkt = rktBin;
const size = 128 << 20;

export async function run(): Promise<void> {
  const manifest = { acKind: "ImageManifest", acVersion: "0.8.11", name: "example.com/big", labels: [] };
  const aci = await buffer(
    writeAci(JSON.stringify(manifest), [{ header: { name: "payload", size }, body: randomBytes(size) }]),
  );
  const server = await startAppcServer();
  const tmp = await mkdtemp(join(tmpdir(), "rkt-bench-appc-"));
  try {
    server.route("/big.aci", { body: aci });
    server.route("/small", { body: "x" });
    const url = `${server.origin}/big.aci`;
    const env = { ...process.env, NODE_EXTRA_CA_CERTS: server.caCert };
    const fetchArgs = (dir: string, bin = rkt) => [
      bin,
      "--dir",
      dir,
      "--insecure-options=image",
      "fetch",
      "--no-render",
      url,
    ];
    let n = 0;
    const cold = (bin: string) => async () => {
      const dir = join(tmp, `cold-${n++}`);
      const r = await spawnMeasured(process.execPath, fetchArgs(dir, bin), { env });
      await rm(dir, { recursive: true, force: true });
      return r;
    };
    await bench("appc: cold rkt fetch of a 128 MiB ACI over https vs curl + sha512sum", {
      ours: cold(rkt),
      peers: withBaseline(
        {
          "curl+sha512sum": () =>
            spawnMeasured("sh", [
              "-c",
              `curl -sf --cacert "$0" -o "$1" "$2" && sha512sum "$1" >/dev/null && rm "$1"`,
              server.caCert!,
              join(tmp, "curl.aci"),
              url,
            ]),
        },
        cold,
      ),
      runs: 3,
    });
    const warm = join(tmp, "warm");
    await spawnMeasured(process.execPath, fetchArgs(warm), { env });
    await bench("appc: warm rkt fetch of the unchanged ACI (304) vs one curl request", {
      ours: () => spawnMeasured(process.execPath, fetchArgs(warm), { env }),
      peers: {
        curl: () =>
          spawnMeasured("curl", [
            "-sf",
            "--cacert",
            server.caCert!,
            "-o",
            "/dev/null",
            `${server.origin}/small`,
          ]),
      },
      runs: 5,
    });
  } finally {
    await server.close();
    await rm(tmp, { recursive: true, force: true });
  }
}
