import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { run } from "./proc.js";

/** Files of a throwaway CA and a server certificate for 127.0.0.1 and localhost, all PEM. */
export interface ServerPki {
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
}

/**
 * Generates with `openssl` a CA and a server certificate signed by it, valid for IP 127.0.0.1 and
 * DNS localhost, into `dir`. P-256 keys: generation is instant, unlike RSA.
 */
export async function makeServerPki(dir: string): Promise<ServerPki> {
  const p: ServerPki = {
    caCert: join(dir, "ca.crt"),
    caKey: join(dir, "ca.key"),
    serverCert: join(dir, "server.crt"),
    serverKey: join(dir, "server.key"),
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await run("openssl", [
    "req",
    "-x509",
    ...ec,
    "-keyout",
    p.caKey,
    "-out",
    p.caCert,
    "-days",
    "7",
    "-subj",
    "/CN=rkt testkit CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  const csr = join(dir, "server.csr");
  const ext = join(dir, "server.ext");
  await writeFile(
    ext,
    [
      "basicConstraints=CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
      "",
    ].join("\n"),
  );
  await run("openssl", ["req", ...ec, "-keyout", p.serverKey, "-out", csr, "-subj", "/CN=127.0.0.1"]);
  await run("openssl", [
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    p.caCert,
    "-CAkey",
    p.caKey,
    "-CAcreateserial",
    "-out",
    p.serverCert,
    "-days",
    "7",
    "-extfile",
    ext,
  ]);
  return p;
}

/**
 * A self-signed RSA certificate and key for signing registry tokens. distribution checks the
 * token's `x5c` chain against its `rootcertbundle`, so the signer's own certificate is the bundle.
 */
export async function makeSigningCert(dir: string): Promise<{ cert: string; key: string }> {
  const cert = join(dir, "token-signer.crt");
  const key = join(dir, "token-signer.key");
  await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    key,
    "-out",
    cert,
    "-days",
    "7",
    "-subj",
    "/CN=rkt testkit token signer",
  ]);
  return { cert, key };
}
