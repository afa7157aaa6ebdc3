import { X509Certificate, createPrivateKey, randomUUID, sign } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";

/** A running token server (docker token authentication spec) on loopback. */
export interface TokenServer {
  /** `http(s)://127.0.0.1:PORT/token`: the realm the registry advertises. */
  realm: string;
  /** Tokens issued so far, most recent last: `scope` query values as requested. */
  issued: string[][];
  close(): Promise<void>;
}

export interface TokenServerOptions {
  certFile: string;
  keyFile: string;
  issuer: string;
  service: string;
  username: string;
  password: string;
  /** Serve HTTPS with this certificate and key (PEM files): clients send credentials only over TLS. */
  tls?: { cert: string; key: string } | undefined;
}

interface Access {
  type: string;
  name: string;
  actions: string[];
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString("base64url");

/**
 * Parses `repository:name:pull,push` scopes. The name may itself contain colons (`repository:host:5000/x:pull`
 * does not happen for repository names, but the spec splits on the first and last colon).
 */
function parseScope(scope: string): Access | undefined {
  const first = scope.indexOf(":");
  const last = scope.lastIndexOf(":");
  if (first < 0 || last <= first) return undefined;
  return {
    type: scope.slice(0, first),
    name: scope.slice(first + 1, last),
    actions: scope
      .slice(last + 1)
      .split(",")
      .filter((a) => a !== ""),
  };
}

/**
 * Starts a token server that requires the given basic credentials and grants every scope asked
 * for. Tokens are RS256 JWTs carrying the signer certificate in `x5c`, which is what distribution
 * v2.8 verifies against `rootcertbundle`.
 */
export async function startTokenServer(o: TokenServerOptions, port: number): Promise<TokenServer> {
  const key = createPrivateKey(await readFile(o.keyFile));
  const der = new X509Certificate(await readFile(o.certFile)).raw;
  const issued: string[][] = [];
  const expected = `Basic ${Buffer.from(`${o.username}:${o.password}`).toString("base64")}`;

  const handler: Parameters<typeof createServer>[1] = (req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    if (req.method !== "GET" || url.pathname !== "/token") {
      res.writeHead(404).end();
      return;
    }
    if (req.headers.authorization !== expected) {
      res.writeHead(401, { "content-type": "application/json" });
      res.end(JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: "bad credentials" }] }));
      return;
    }
    const scopes = url.searchParams.getAll("scope").flatMap((s) => s.split(" "));
    issued.push(scopes);
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: "JWT", alg: "RS256", x5c: [der.toString("base64")] };
    const claims = {
      iss: o.issuer,
      sub: o.username,
      aud: url.searchParams.get("service") ?? o.service,
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: randomUUID(),
      access: scopes.map(parseScope).filter((a): a is Access => a !== undefined),
    };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const token = `${input}.${b64url(sign("sha256", Buffer.from(input), key))}`;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        token,
        access_token: token,
        expires_in: 300,
        issued_at: new Date(now * 1000).toISOString(),
      }),
    );
  };
  const server: Server =
    o.tls === undefined
      ? createServer(handler)
      : createHttpsServer({ cert: await readFile(o.tls.cert), key: await readFile(o.tls.key) }, handler);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  server.unref();
  return {
    realm: `${o.tls === undefined ? "http" : "https"}://127.0.0.1:${port}/token`,
    issued,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
