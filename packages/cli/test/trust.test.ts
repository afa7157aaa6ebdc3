// `rkt trust`, `rkt trust list`, `rkt trust rm` in-process (injected streams and env, real files,
// real loopback HTTPS servers with a test CA) and through a pseudo-terminal for the review prompt.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main, type MainIO } from "@rkt/cli";
import { sink } from "./helpers.js";

const repo = resolve(import.meta.dirname, "..", "..", "..");
const bin = join(repo, "packages", "cli", "bin", "rkt.js");
const built = existsSync(join(repo, "packages", "cli", "dist", "commands", "trust.js"));

let tmp: string;
let gnupg: string;
let keyFile: string;
let keyArmored: string;
let fp: string;
let ca: string;
let tlsKey: string;
let tlsCert: string;

const gpg = (args: string[]): Buffer =>
  execFileSync(
    "gpg",
    ["--batch", "--homedir", gnupg, "--pinentry-mode", "loopback", "--passphrase", "", ...args],
    {
      stdio: ["pipe", "pipe", "pipe"],
    },
  );

function display(hex: string): string {
  const g = hex.toUpperCase().match(/.{4}/g)!;
  return `${g.slice(0, 5).join(" ")}  ${g.slice(5).join(" ")}`;
}

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-trust-cli-"));
  gnupg = join(tmp, "gnupg");
  mkdirSync(gnupg, { mode: 0o700 });
  gpg(["--quick-gen-key", "Trust Test <trust@example.com>", "ed25519", "sign", "0"]);
  keyArmored = gpg(["--armor", "--export", "trust@example.com"]).toString();
  keyFile = join(tmp, "key.asc");
  writeFileSync(keyFile, keyArmored);
  fp = gpg(["--with-colons", "--list-keys", "trust@example.com"])
    .toString()
    .split("\n")
    .find((l) => l.startsWith("fpr:"))!
    .split(":")[9]!
    .toLowerCase();
  // A throwaway CA and a server certificate for localhost / 127.0.0.1.
  ca = join(tmp, "ca.crt");
  const caKey = join(tmp, "ca.key");
  tlsKey = join(tmp, "server.key");
  tlsCert = join(tmp, "server.crt");
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      ...ec,
      "-keyout",
      caKey,
      "-out",
      ca,
      "-days",
      "2",
      "-subj",
      "/CN=trust test CA",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign",
    ],
    { stdio: "ignore" },
  );
  const csr = join(tmp, "server.csr");
  const ext = join(tmp, "server.ext");
  writeFileSync(
    ext,
    "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
  );
  execFileSync("openssl", ["req", ...ec, "-keyout", tlsKey, "-out", csr, "-subj", "/CN=localhost"], {
    stdio: "ignore",
  });
  execFileSync(
    "openssl",
    [
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      ca,
      "-CAkey",
      caKey,
      "-CAcreateserial",
      "-out",
      tlsCert,
      "-days",
      "2",
      "-extfile",
      ext,
    ],
    { stdio: "ignore" },
  );
});

afterAll(() => {
  try {
    execFileSync("gpgconf", ["--homedir", gnupg, "--kill", "gpg-agent"], { stdio: "ignore" });
  } catch {
    // no agent started
  }
  rmSync(tmp, { recursive: true, force: true });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let n = 0;
function configDirs(): { local: string; system: string; args: string[] } {
  const d = join(tmp, `cfg-${n++}`);
  const local = join(d, "local");
  const system = join(d, "system");
  return { local, system, args: [`--local-config=${local}`, `--system-config=${system}`] };
}

async function rkt(args: string[], io: Partial<MainIO> = {}): Promise<Run> {
  const out = sink();
  const err = sink();
  const stdin = new PassThrough();
  stdin.end();
  const code = await main(args, {
    stdout: out.stream,
    stderr: err.stream,
    stdin,
    env: {},
    cwd: tmp,
    uid: 0,
    ...io,
  });
  return { code, stdout: out.text(), stderr: err.text() };
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

async function serve(handler: Handler, tls: boolean): Promise<{ port: number; close: () => Promise<void> }> {
  const server = tls
    ? createHttpsServer({ key: readFileSync(tlsKey), cert: readFileSync(tlsCert) }, handler)
    : createHttpServer(handler);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe("rkt trust: flags and errors (rkt's texts, exit 254, nothing stored)", () => {
  it("without --prefix or --root: usage, or the implicit unbounded trust refusal", async () => {
    const c = configDirs();
    const none = await rkt([...c.args, "trust"]);
    expect(none.code).toBe(254);
    expect(none.stderr).toContain("rkt trust [--prefix=PREFIX]");
    const r = await rkt([...c.args, "trust", keyFile]);
    expect(r.code).toBe(254);
    expect(r.stderr).toBe(
      [
        "trust: aborting due to implicit unbounded trust (root domain)",
        "Please provide a specific domain prefix to trust:",
        '    rkt trust --prefix "example.com/foo" [PUBKEY]',
        '    rkt trust --prefix "example.com/foo/*" [PUBKEY]',
        "Otherwise, trust at the root domain (not recommended) must be explicitly requested:",
        "    rkt trust --root PUBKEY",
        "",
      ].join("\n"),
    );
    expect(existsSync(c.local)).toBe(false);
  });

  const cases: [string, string[], string][] = [
    [
      "both scopes",
      ["--root", "--prefix", "example.com/x", "KEY"],
      "trust: --root and --prefix usage mutually exclusive\n",
    ],
    [
      "a URL scheme",
      ["--prefix", "https://example.com/x", "KEY"],
      "trust: --prefix must not contain a URL scheme, omit https://\n",
    ],
    [
      "an invalid prefix",
      ["--prefix", "Example.com/x/*", "KEY"],
      'trust: invalid prefix "Example.com/x/*": must be an AC identifier (lowercase letters, digits, and - . _ ~ / between them)\n',
    ],
    ["--root without keys", ["--root"], "trust: error determining key location: empty prefix\n"],
    [
      "an http URL",
      ["--prefix", "example.com/x", "http://127.0.0.1:1/k.asc"],
      "trust: --insecure-allow-http required for http URLs\n",
    ],
    [
      "an ftp URL",
      ["--prefix", "example.com/x", "ftp://127.0.0.1/k.asc"],
      "trust: only local files and http or https URLs supported\n",
    ],
  ];
  for (const [title, args, stderr] of cases) {
    it(`refuses ${title}`, async () => {
      const c = configDirs();
      const r = await rkt([...c.args, "trust", ...args.map((a) => (a === "KEY" ? keyFile : a))]);
      expect(r).toEqual({ code: 254, stdout: "", stderr });
      expect(existsSync(c.local)).toBe(false);
    });
  }

  it("refuses a garbage or binary key file, naming it", async () => {
    const c = configDirs();
    const garbage = join(tmp, "garbage.asc");
    writeFileSync(garbage, "not a key\n");
    const r = await rkt([
      ...c.args,
      "trust",
      "--prefix",
      "example.com/x",
      "--skip-fingerprint-review",
      garbage,
    ]);
    expect(r.code).toBe(254);
    expect(r.stderr).toBe(
      `trust: error reading key: ${garbage}: not an ASCII-armored OpenPGP public key block\n`,
    );
    const binary = join(tmp, "binary.gpg");
    writeFileSync(binary, gpg(["--export", "trust@example.com"]));
    const b = await rkt([
      ...c.args,
      "trust",
      "--prefix",
      "example.com/x",
      "--skip-fingerprint-review",
      binary,
    ]);
    expect(b.stderr).toContain(`trust: error reading key: ${binary}: `);
    const missing = await rkt([...c.args, "trust", "--prefix", "example.com/x", join(tmp, "nope.asc")]);
    expect(missing.stderr).toBe(
      `trust: error opening key file ${join(tmp, "nope.asc")}: no such file or directory\n`,
    );
    expect(existsSync(c.local)).toBe(false);
  });

  it("without a TTY says to check the fingerprint and use --skip-fingerprint-review, and refuses", async () => {
    const c = configDirs();
    const r = await rkt([...c.args, "trust", "--prefix", "example.com/hello", keyFile]);
    expect(r.code).toBe(254);
    expect(r.stdout).toBe(`gpg key fingerprint is: ${display(fp)}\n\tTrust Test <trust@example.com>\n`);
    expect(r.stderr).toBe(
      [
        'pubkey: prefix: "example.com/hello"',
        `key: "${keyFile}"`,
        `pubkey: cannot review the fingerprint of "${keyFile}": stdin and stderr are not both a terminal`,
        "pubkey: to trust it anyway, check the fingerprint above and run again with --skip-fingerprint-review",
        "trust: error reviewing key: unable to ask user to review fingerprint due to lack of tty",
        "",
      ].join("\n"),
    );
    expect(existsSync(c.local)).toBe(false);
  });
});

describe("rkt trust: storing keys", () => {
  it("stores a key file for a prefix in the local config dir, verbatim, 0644", async () => {
    const c = configDirs();
    const r = await rkt([
      ...c.args,
      "trust",
      "--prefix",
      "example.com/hello",
      "--skip-fingerprint-review",
      "key.asc",
    ]);
    const path = join(c.local, "trustedkeys", "prefix.d", "example.com", "hello", fp);
    expect(r).toEqual({
      code: 0,
      stdout: [
        `gpg key fingerprint is: ${display(fp)}`,
        "\tTrust Test <trust@example.com>",
        'Trusting "key.asc" for prefix "example.com/hello" without fingerprint review.',
        `Added key for prefix "example.com/hello" at "${path}"`,
        "",
      ].join("\n"),
      stderr: 'pubkey: prefix: "example.com/hello"\nkey: "key.asc"\n',
    });
    expect(readFileSync(path, "utf8")).toBe(keyArmored);
    expect(statSync(path).mode & 0o777).toBe(0o644);
    expect(existsSync(c.system)).toBe(false);
  });

  it("stores a root key with --root", async () => {
    const c = configDirs();
    const r = await rkt([...c.args, "trust", "--root=true", "--skip-fingerprint-review=1", keyFile]);
    const path = join(c.local, "trustedkeys", "root.d", fp);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      `Trusting "${keyFile}" for prefix "" without fingerprint review.\nAdded root key at "${path}"\n`,
    );
    expect(readFileSync(path, "utf8")).toBe(keyArmored);
  });

  it("downloads a key over https (test CA via NODE_EXTRA_CA_CERTS), no credentials sent; bad status", async () => {
    const seen: IncomingMessage["headers"][] = [];
    const srv = await serve((req, res) => {
      seen.push(req.headers);
      if (req.url === "/key.asc") res.end(keyArmored);
      else if (req.url === "/moved.asc") res.writeHead(302, { location: "/key.asc" }).end();
      else res.writeHead(404).end();
    }, true);
    try {
      const c = configDirs();
      const env = { NODE_EXTRA_CA_CERTS: ca };
      const url = `https://localhost:${srv.port}/moved.asc`;
      const r = await rkt(
        [...c.args, "trust", "--prefix", "example.com/web", "--skip-fingerprint-review", url],
        { env },
      );
      expect(r.stderr).toBe(`pubkey: prefix: "example.com/web"\nkey: "${url}"\n`);
      expect(r.code).toBe(0);
      expect(readFileSync(join(c.local, "trustedkeys", "prefix.d", "example.com", "web", fp), "utf8")).toBe(
        keyArmored,
      );
      expect(seen.every((h) => h.authorization === undefined && h.cookie === undefined)).toBe(true);
      const bad = await rkt(
        [...c.args, "trust", "--prefix", "example.com/web", `https://localhost:${srv.port}/none.asc`],
        { env },
      );
      expect(bad).toMatchObject({ code: 254, stderr: "trust: bad HTTP status code: 404\n" });
      // Without the test CA the server is not trusted.
      const untrusted = await rkt([
        ...c.args,
        "trust",
        "--prefix",
        "example.com/web",
        `https://localhost:${srv.port}/key.asc`,
      ]);
      expect(untrusted.code).toBe(254);
      expect(untrusted.stderr).toMatch(
        /^trust: https:\/\/localhost:\d+\/key\.asc: .*(certificate|self.signed|issuer)/i,
      );
      // --trust-keys-from-https accepts an https key without review (no TTY needed).
      const c2 = configDirs();
      const f = await rkt(
        [
          ...c2.args,
          "--trust-keys-from-https",
          "trust",
          "--prefix",
          "example.com/web",
          `https://localhost:${srv.port}/key.asc`,
        ],
        { env },
      );
      expect(f.code).toBe(0);
      expect(f.stdout).toContain("without fingerprint review.");
    } finally {
      await srv.close();
    }
  });

  it("downloads over plain http only with --insecure-allow-http", async () => {
    const srv = await serve((_req, res) => res.end(keyArmored), false);
    try {
      const c = configDirs();
      const url = `http://127.0.0.1:${srv.port}/key.asc`;
      const no = await rkt([
        ...c.args,
        "trust",
        "--prefix",
        "example.com/plain",
        "--skip-fingerprint-review",
        url,
      ]);
      expect(no.stderr).toBe("trust: --insecure-allow-http required for http URLs\n");
      const yes = await rkt([
        ...c.args,
        "trust",
        "--prefix",
        "example.com/plain",
        "--skip-fingerprint-review",
        "--insecure-allow-http",
        url,
      ]);
      expect(yes.code).toBe(0);
      expect(yes.stdout).toContain('Added key for prefix "example.com/plain"');
    } finally {
      await srv.close();
    }
  });

  it("discovers keys by ac-discovery-pubkeys, walking up the prefix (loopback port via RKT_DISCOVERY_PORT)", async () => {
    const requests: string[] = [];
    let port = 0;
    const srv = await serve((req, res) => {
      requests.push(req.url ?? "");
      if (req.url === "/?ac-discovery=1") {
        res.setHeader("content-type", "text/html");
        res.end(
          `<html><head><meta name="ac-discovery" content="localhost https://localhost/{name}.{ext}">` +
            `<meta name="ac-discovery-pubkeys" content="localhost https://localhost:${port}/pubkeys.asc"></head></html>`,
        );
      } else if (req.url === "/pubkeys.asc") res.end(keyArmored);
      else res.writeHead(404).end();
    }, true);
    port = srv.port;
    try {
      const c = configDirs();
      const env = { NODE_EXTRA_CA_CERTS: ca, RKT_DISCOVERY_PORT: String(port) };
      const r = await rkt([...c.args, "trust", "--prefix", "localhost/hello", "--skip-fingerprint-review"], {
        env,
      });
      expect(r.stderr).toBe(
        `pubkey: prefix: "localhost/hello"\nkey: "https://localhost:${port}/pubkeys.asc"\n`,
      );
      expect(r.code).toBe(0);
      expect(requests).toEqual(["/hello?ac-discovery=1", "/?ac-discovery=1", "/pubkeys.asc"]);
      expect(existsSync(join(c.local, "trustedkeys", "prefix.d", "localhost", "hello", fp))).toBe(true);
      const none = await rkt([...c.args, "trust", "--prefix", "localhost2/x"], { env });
      expect(none.code).toBe(254);
      expect(none.stderr).toBe("trust: error determining key location: discovery failed\n");
    } finally {
      await srv.close();
    }
  });
});

describe("rkt trust: plain HTTP is opt-in", () => {
  it("discovery falls back to http only with --insecure-allow-http; https never redirects to http", async () => {
    let port = 0;
    const srv = await serve((req, res) => {
      if (req.url === "/?ac-discovery=1") {
        res.end(`<meta name="ac-discovery-pubkeys" content="localhost http://127.0.0.1:${port}/k.asc">`);
      } else if (req.url === "/k.asc") res.end(keyArmored);
      else res.writeHead(404).end();
    }, false);
    port = srv.port;
    const tls = await serve((_req, res) => {
      res.writeHead(302, { location: `http://127.0.0.1:${port}/k.asc` }).end();
    }, true);
    try {
      const c = configDirs();
      const env = { RKT_DISCOVERY_PORT: String(port) };
      const no = await rkt([...c.args, "trust", "--prefix", "localhost", "--skip-fingerprint-review"], {
        env,
      });
      expect(no).toMatchObject({
        code: 254,
        stderr: "trust: error determining key location: discovery failed\n",
      });
      const yes = await rkt(
        [...c.args, "trust", "--prefix", "localhost", "--skip-fingerprint-review", "--insecure-allow-http"],
        { env },
      );
      expect(yes.stderr).toBe(`pubkey: prefix: "localhost"\nkey: "http://127.0.0.1:${port}/k.asc"\n`);
      expect(yes.code).toBe(0);
      const url = `https://localhost:${tls.port}/k.asc`;
      const down = await rkt(
        [...c.args, "trust", "--prefix", "localhost", "--skip-fingerprint-review", url],
        {
          env: { NODE_EXTRA_CA_CERTS: ca },
        },
      );
      expect(down).toMatchObject({
        code: 254,
        stderr: `trust: ${url}: redirected to http://127.0.0.1:${port}/k.asc: --insecure-allow-http required for http URLs\n`,
      });
    } finally {
      await srv.close();
      await tls.close();
    }
  });
});

describe("rkt trust list / rm", () => {
  it("lists keys (text and JSON), per image name, and removes them", async () => {
    const c = configDirs();
    expect(
      (await rkt([...c.args, "trust", "--prefix", "example.com/hello", "--skip-fingerprint-review", keyFile]))
        .code,
    ).toBe(0);
    expect((await rkt([...c.args, "trust", "--root", "--skip-fingerprint-review", keyFile])).code).toBe(0);
    const text = await rkt([...c.args, "trust", "list"]);
    expect(text.code).toBe(0);
    expect(text.stdout.split("\n")[0]).toMatch(/^PREFIX\s+FINGERPRINT\s+SOURCE\s+IDENTITY$/);
    expect(text.stdout).toContain(
      `(root)             ${display(fp)}  local   Trust Test <trust@example.com>`,
    );
    const json = JSON.parse((await rkt([...c.args, "trust", "list", "--format", "json"])).stdout) as {
      prefix: string;
      fingerprint: string;
      root: boolean;
    }[];
    expect(json.map((k) => [k.prefix, k.root, k.fingerprint])).toEqual([
      ["", true, fp],
      ["example.com/hello", false, fp],
    ]);
    const other = JSON.parse(
      (await rkt([...c.args, "trust", "list", "--prefix", "example.com/other", "--format", "json"])).stdout,
    ) as unknown[];
    expect(other).toHaveLength(1); // the root key only
    // Ambiguous without a scope; --prefix removes the prefix key; gpg's spaced form is accepted.
    const amb = await rkt([...c.args, "trust", "rm", fp]);
    expect(amb).toMatchObject({ code: 254 });
    expect(amb.stderr).toContain(
      'is trusted for the root, prefix "example.com/hello"; give --prefix or --root',
    );
    const rm = await rkt([...c.args, "trust", "rm", "--prefix", "example.com/hello", display(fp)]);
    const path = join(c.local, "trustedkeys", "prefix.d", "example.com", "hello", fp);
    expect(rm).toEqual({
      code: 0,
      stdout: `Removed key for prefix "example.com/hello" at "${path}"\n`,
      stderr: "",
    });
    const rest = await rkt([...c.args, "trust", "rm", fp]);
    expect(rest.stdout).toBe(`Removed root key at "${join(c.local, "trustedkeys", "root.d", fp)}"\n`);
    const again = await rkt([...c.args, "trust", "rm", "--root", fp]);
    expect(again.code).toBe(254);
    expect(again.stderr).toMatch(/^rm: no trusted key [0-9a-f]{40} for the root at /);
    expect((await rkt([...c.args, "trust", "list", "--format", "json"])).stdout).toBe("[]\n");
  });
});

// The review prompt needs stdin and stderr to be terminals: python3's pty gives the built rkt one.
const ptyScript = `
import os, pty, sys, select
answers = sys.argv[1].split(",") if sys.argv[1] else []
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
out = b""
asked = 0
while True:
    r, _, _ = select.select([fd], [], [], 20)
    if not r:
        break
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
    while out.count(b"(yes/no)?") > asked and asked < len(answers):
        os.write(fd, (answers[asked] + "\\n").encode())
        asked += 1
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
sys.exit(os.waitstatus_to_exitcode(status))
`;

function ptyRkt(answers: string[], args: string[]): { code: number | null; out: string } {
  const r = spawnSync("python3", ["-c", ptyScript, answers.join(","), process.execPath, bin, ...args], {
    encoding: "utf8",
    timeout: 60_000,
  });
  return { code: r.status, out: r.stdout.replace(/\r\n/g, "\n") };
}

describe.skipIf(!built)("rkt trust review prompt on a pseudo-terminal (built binary)", () => {
  it("asks, re-asks on anything but yes/no, and stores after yes", () => {
    const c = configDirs();
    const r = ptyRkt(["maybe", "yes"], [...c.args, "trust", "--prefix", "example.com/tty", keyFile]);
    const path = join(c.local, "trustedkeys", "prefix.d", "example.com", "tty", fp);
    expect(r.out).toContain(`gpg key fingerprint is: ${display(fp)}\n\tTrust Test <trust@example.com>\n`);
    expect(r.out).toContain(
      "Are you sure you want to trust this key (yes/no)?\nmaybe\nPlease enter 'yes' or 'no'\n" +
        "Are you sure you want to trust this key (yes/no)?\nyes\n" +
        `Trusting "${keyFile}" for prefix "example.com/tty" after fingerprint review.\n` +
        `Added key for prefix "example.com/tty" at "${path}"\n`,
    );
    expect(r.code).toBe(0);
    expect(readFileSync(path, "utf8")).toBe(keyArmored);
  });

  it("no: not trusting, exit 0, nothing stored", () => {
    const c = configDirs();
    const r = ptyRkt(["no"], [...c.args, "trust", "--prefix", "example.com/tty", keyFile]);
    expect(r.out).toContain(
      `Are you sure you want to trust this key (yes/no)?\nno\npubkey: not trusting "${keyFile}"\n`,
    );
    expect(r.code).toBe(0);
    expect(existsSync(join(c.local, "trustedkeys"))).toBe(false);
  });
});
