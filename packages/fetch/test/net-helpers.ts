// Helpers of the proxy and certificate tests: a forward proxy on loopback that logs what passed
// through it, and pushing / pulling one image with the registry client.
import { createServer, request, type IncomingMessage, type Server } from "node:http";
import { connect, isIP, type AddressInfo, type Socket } from "node:net";
import { Readable } from "node:stream";
import { expect } from "vitest";
import { parseDigest, type Descriptor } from "@rkt/oci";
import type { RegistryClient } from "../src/registry/client.js";
import type { Blob, TestImage } from "./registry-harness.js";

/** A forward proxy: `CONNECT host:port` tunnels and absolute-URI requests, to loopback only. */
export interface TestProxy {
  /** `http://127.0.0.1:PORT`. */
  readonly url: string;
  /** `CONNECT 127.0.0.1:5000` or `GET http://127.0.0.1:5000/v2/`, in arrival order. */
  readonly log: string[];
  /** Answer CONNECTs with this status instead of tunnelling (e.g. 403). */
  refuseConnect: number | undefined;
  /** Answer 407 unless `Proxy-Authorization` is exactly this. */
  requireAuth: string | undefined;
  close(): Promise<void>;
}

// Never forward anywhere but this machine, whatever a test gets wrong.
function loopback(host: string): boolean {
  return host === "localhost" || (isIP(host) === 4 && host.startsWith("127.")) || host === "::1";
}

export async function startProxy(): Promise<TestProxy> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((req: IncomingMessage, res) => {
    proxy.log.push(`${req.method} ${req.url}`);
    if (proxy.requireAuth !== undefined && req.headers["proxy-authorization"] !== proxy.requireAuth) {
      res.statusCode = 407;
      res.setHeader("proxy-authenticate", 'Basic realm="test"');
      return void res.end();
    }
    let target: URL;
    try {
      target = new URL(req.url ?? "");
    } catch {
      res.statusCode = 400;
      return void res.end();
    }
    if (target.protocol !== "http:" || !loopback(target.hostname)) {
      res.statusCode = 403;
      return void res.end();
    }
    const headers = { ...req.headers };
    delete headers["proxy-connection"];
    delete headers["proxy-authorization"];
    const out = request(target, { method: req.method, headers, agent: false }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    out.on("error", () => res.destroy());
    req.pipe(out);
  });
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  server.on("connect", (req: IncomingMessage, client: Socket, head: Buffer) => {
    proxy.log.push(`CONNECT ${req.url}`);
    const m = /^(.+):(\d+)$/.exec(req.url ?? "");
    const host = m?.[1]?.replace(/^\[|\]$/g, "");
    if (proxy.requireAuth !== undefined && req.headers["proxy-authorization"] !== proxy.requireAuth) {
      client.end(
        'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test"\r\n\r\n',
      );
      return;
    }
    if (proxy.refuseConnect !== undefined || m === null || host === undefined || !loopback(host)) {
      client.end(`HTTP/1.1 ${proxy.refuseConnect ?? 403} Refused\r\n\r\n`);
      return;
    }
    const up = connect(Number(m[2]), host, () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      up.write(head);
      up.pipe(client);
      client.pipe(up);
    });
    sockets.add(up);
    up.on("close", () => sockets.delete(up));
    up.on("error", () => client.destroy());
    client.on("error", () => up.destroy());
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const proxy: TestProxy = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    log: [],
    refuseConnect: undefined,
    requireAuth: undefined,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
  return proxy;
}

export function descriptorOf(b: Blob): Descriptor {
  return { mediaType: b.mediaType, digest: parseDigest(b.digest), size: b.size };
}

/** Pushes `img` as `repository:tag` with the client's own push path. */
export async function pushImage(
  c: RegistryClient,
  repository: string,
  tag: string,
  img: TestImage,
): Promise<void> {
  for (const b of [img.config, img.layer]) {
    await c.pushBlob(repository, descriptorOf(b), () => Readable.from([b.bytes]));
  }
  await c.pushManifest(repository, tag, img.manifest.bytes, img.manifest.mediaType);
}

async function collect(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

/**
 * Pulls `repository:tag` as a pull does (ping, HEAD, manifest, config and layer blobs) and
 * checks every byte against `img`.
 */
export async function pullAndCheck(
  c: RegistryClient,
  repository: string,
  tag: string,
  img: TestImage,
): Promise<void> {
  await c.ping();
  expect((await c.resolve(repository, tag)).digest).toBe(img.manifest.digest);
  const got = await c.getImage(repository, tag);
  expect(got.manifest.descriptor.digest).toBe(img.manifest.digest);
  for (const b of [img.config, img.layer]) {
    expect((await collect(await c.fetchBlob(repository, descriptorOf(b)))).equals(b.bytes)).toBe(true);
  }
}
