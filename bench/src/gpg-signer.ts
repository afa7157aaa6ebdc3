// A throwaway GnuPG signing key for the benchmarks that sign what they measure.
import { execFileSync } from "node:child_process";
import { mkdir } from "node:fs/promises";

/** A GnuPG home holding one Ed25519 signing key for `bench@example.com`. */
export interface BenchSigner {
  /** Runs gpg on that home (batch, no passphrase); returns its stdout. */
  readonly gpg: (args: string[]) => Buffer;
  /** The key's fingerprint (40 hex). */
  readonly fingerprint: string;
  readonly email: string;
}

/**
 * Creates `home` (0700) and a new signing key in it: Ed25519, or RSA 2048 for rkt 1.30, whose Go
 * OpenPGP (x/crypto/openpgp) has no EdDSA.
 */
export async function benchSigner(
  home: string,
  algo: "ed25519" | "rsa2048" = "ed25519",
): Promise<BenchSigner> {
  await mkdir(home, { mode: 0o700 });
  const gpg = (args: string[]): Buffer =>
    execFileSync(
      "gpg",
      ["--batch", "--homedir", home, "--pinentry-mode", "loopback", "--passphrase", "", ...args],
      { stdio: ["pipe", "pipe", "pipe"] },
    );
  const email = "bench@example.com";
  gpg(["--quick-gen-key", `Bench Signer <${email}>`, algo, "sign", "0"]);
  const fingerprint = gpg(["--with-colons", "--list-keys", email])
    .toString()
    .split("\n")
    .find((l) => l.startsWith("fpr:"))!
    .split(":")[9]!;
  return { gpg, fingerprint, email };
}
