// `npm run bench [-- filter…]`: runs every benchmark whose name contains one of the filters (all
// when none); `npm run bench -- fixtures [name…]` builds the cached fixtures.
import { ensureFixture, fixtureNames, type FixtureName } from "./fixtures.js";

interface Suite {
  name: string;
  what: string;
  load: () => Promise<{ run: () => Promise<void> }>;
}

// Add a benchmark here: a module under benchmarks/ exporting `run()`.
const suites: Suite[] = [
  {
    name: "digest",
    what: "sha256 of 256 MiB: createDigester vs sha256sum",
    load: () => import("./benchmarks/digest.js"),
  },
  {
    name: "store",
    what: "1 GiB ACI ingest (rkt fetch) vs cp + sha512sum; image list and gc on 10,000 images",
    load: () => import("./benchmarks/store.js"),
  },
  {
    name: "pull",
    what: "registry pull of the Debian fixture: cold vs skopeo copy, warm update re-fetch, resume after a kill at 50%",
    load: () => import("./benchmarks/pull.js"),
  },
  {
    name: "copy",
    what: "image copy registry to registry (cold and with every blob present), push from the store, save to an oci-archive, each vs skopeo copy",
    load: () => import("./benchmarks/copy.js"),
  },
  {
    name: "convert",
    what: "docker2aci of a 206 MB docker save archive (plain and gzip ACI) vs the docker2aci binary; the debian fixture from the registry, squashed and per layer",
    load: () => import("./benchmarks/convert.js"),
  },
  {
    name: "sync",
    what: "image sync of 10 images sharing a base layer vs skopeo sync (into an empty registry, and a re-sync with nothing changed)",
    load: () => import("./benchmarks/sync.js"),
  },
  {
    name: "bundle",
    what: "rkt image save --bundle and rkt image load of the debian fixture, signed, vs skopeo copy to and from an oci-archive (+ standalone-verify)",
    load: () => import("./benchmarks/bundle.js"),
  },
  {
    name: "serve",
    what: "8 concurrent rkt fetch of the debian fixture from rkt image serve vs from docker-registry; the server's peak RSS",
    load: () => import("./benchmarks/serve.js"),
  },
  {
    name: "verify",
    what: "signed registry pull under policy.json: rkt fetch vs skopeo copy --policy; verification cost cold and warm",
    load: () => import("./benchmarks/verify.js"),
  },
  {
    name: "appc",
    what: "appc fetch of a 128 MiB ACI over https: cold vs curl + sha512sum, warm 304 re-fetch vs one curl request",
    load: () => import("./benchmarks/appc.js"),
  },
  {
    name: "run",
    what: "rkt run --net=host of the stored example image, start to exit, vs runc run of a ready bundle and node -e 0",
    load: () => import("./benchmarks/run.js"),
  },
  {
    name: "startup",
    what: "rkt --help, version, image list (empty store), fetch re-fetch of a stored OCI image: bundle with a warm code cache, without one, and the tsc output, vs node -e 0",
    load: () => import("./benchmarks/startup.js"),
  },
  {
    name: "render",
    what: "tree store as root: first render of the debian fixture vs umoci unpack vs tar; a second tree; fetch + render of a 200 MB Debian ACI",
    load: () => import("./benchmarks/render.js"),
  },
];

async function main(argv: string[]): Promise<number> {
  if (argv[0] === "fixtures") {
    const wanted = argv.length > 1 ? argv.slice(1) : fixtureNames;
    for (const n of wanted) {
      if (!fixtureNames.includes(n as FixtureName)) {
        process.stderr.write(`bench: unknown fixture ${n} (known: ${fixtureNames.join(", ")})\n`);
        return 2;
      }
      const f = await ensureFixture(n as FixtureName);
      process.stdout.write(`${f.name}\t${f.digest}\t${f.layoutDir}:${f.layoutRef}\t${f.repoTag}\n`);
    }
    return 0;
  }
  if (argv.includes("--list")) {
    for (const s of suites) process.stdout.write(`${s.name}\t${s.what}\n`);
    return 0;
  }
  const selected = suites.filter((s) => argv.length === 0 || argv.some((f) => s.name.includes(f)));
  if (selected.length === 0) {
    process.stderr.write(`bench: no benchmark matches ${argv.join(" ")} (see --list)\n`);
    return 2;
  }
  for (const s of selected) await (await s.load()).run();
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
