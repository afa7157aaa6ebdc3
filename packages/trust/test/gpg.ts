// Test helper: a throwaway GnuPG home, driving the real Debian `gpg` binary.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Gpg {
  readonly home: string;
  run(args: readonly string[], o?: { input?: Buffer | string; fakedTime?: string }): Buffer;
  /** Generates a passphrase-less key and returns its lowercase fingerprint. */
  genKey(uid: string, algo: string, o?: { expire?: string; fakedTime?: string }): string;
  exportKey(uid: string, armor?: boolean): Buffer;
  detachSign(uid: string, data: Buffer, o?: { armor?: boolean; fakedTime?: string; expire?: string }): Buffer;
  /** Imports the revocation certificate gpg made at key generation. */
  revoke(fp: string): void;
  addSigningSubkey(fp: string, algo: string): string;
}

const homes: string[] = [];

/**
 * Stops the gpg-agent each home started and removes the homes. Call from `afterAll` in every
 * file that uses `makeGpg`, or agents outlive the test run.
 */
export function disposeGpgs(): void {
  for (const home of homes.splice(0)) {
    try {
      execFileSync("gpgconf", ["--homedir", home, "--kill", "gpg-agent"], { stdio: "ignore" });
    } catch {
      // No agent was started for this home.
    }
    rmSync(home, { recursive: true, force: true });
  }
}

export function makeGpg(): Gpg {
  const home = mkdtempSync(join(tmpdir(), "rkt-trust-gpg-"));
  homes.push(home);
  const run: Gpg["run"] = (args, o = {}) =>
    execFileSync(
      "gpg",
      [
        "--batch",
        "--homedir",
        home,
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
        ...(o.fakedTime === undefined ? [] : ["--faked-system-time", o.fakedTime]),
        ...args,
      ],
      { input: o.input, stdio: ["pipe", "pipe", "pipe"] },
    );
  const fingerprints = (uid: string): string[] =>
    run(["--with-colons", "--list-keys", uid])
      .toString()
      .split("\n")
      .filter((l) => l.startsWith("fpr:"))
      .map((l) => l.split(":")[9]!.toLowerCase());
  return {
    home,
    run,
    genKey(uid, algo, o = {}) {
      run(
        ["--quick-gen-key", uid, algo, "sign", o.expire ?? "0"],
        o.fakedTime ? { fakedTime: o.fakedTime } : {},
      );
      return fingerprints(uid)[0]!;
    },
    exportKey(uid, armor = true) {
      return run(["--export", ...(armor ? ["--armor"] : []), uid]);
    },
    detachSign(uid, data, o = {}) {
      const file = join(home, `data-${Math.random()}`);
      writeFileSync(file, data);
      return run(
        [
          "--local-user",
          uid,
          ...(o.expire === undefined ? [] : ["--default-sig-expire", o.expire]),
          "--detach-sign",
          ...(o.armor === true ? ["--armor"] : []),
          "--output",
          "-",
          file,
        ],
        o.fakedTime ? { fakedTime: o.fakedTime } : {},
      );
    },
    revoke(fp) {
      const cert = readFileSync(join(home, "openpgp-revocs.d", `${fp.toUpperCase()}.rev`), "utf8");
      run(["--import"], { input: cert.replace(/^:-----BEGIN/m, "-----BEGIN") });
    },
    addSigningSubkey(fp, algo) {
      run(["--quick-add-key", fp.toUpperCase(), algo, "sign", "0"]);
      return fingerprints(fp.toUpperCase()).at(-1)!;
    },
  };
}
