// A throwaway GnuPG home for tests that need real OpenPGP keys and detached signatures.
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";

/** A GnuPG home directory with helpers; {@link GnupgHome.close} stops its agent and removes it. */
export interface GnupgHome {
  readonly dir: string;
  /** Runs gpg in batch mode on this home (no passphrase), with optional stdin; returns stdout. */
  gpg(args: readonly string[], input?: Uint8Array): Buffer;
  /** Generates a signing-only key for `uid` (`Name <email>`); ed25519 unless `algo` says otherwise. */
  generateKey(uid: string, algo?: string): void;
  /** The ASCII-armored public key of `who` (an email or fingerprint). */
  exportKey(who: string): Buffer;
  /** An ASCII-armored (or binary) detached signature of `data` by `who`. */
  sign(who: string, data: Uint8Array, o?: { armor?: boolean }): Buffer;
  close(): void;
}

/** Creates the home at `dir` (mode 0700). Needs the `gpg` command. */
export function gnupgHome(dir: string): GnupgHome {
  mkdirSync(dir, { mode: 0o700, recursive: true });
  const gpg = (args: readonly string[], input?: Uint8Array): Buffer =>
    execFileSync(
      "gpg",
      ["--batch", "--homedir", dir, "--pinentry-mode", "loopback", "--passphrase", "", ...args],
      { input, stdio: ["pipe", "pipe", "pipe"] },
    );
  return {
    dir,
    gpg,
    generateKey: (uid, algo = "ed25519") => void gpg(["--quick-gen-key", uid, algo, "sign", "0"]),
    exportKey: (who) => gpg(["--armor", "--export", who]),
    sign: (who, data, o = {}) =>
      gpg(["--local-user", who, "--detach-sign", ...(o.armor === false ? [] : ["--armor"])], data),
    close() {
      try {
        execFileSync("gpgconf", ["--homedir", dir, "--kill", "gpg-agent"], { stdio: "ignore" });
      } catch {
        // no agent started
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
