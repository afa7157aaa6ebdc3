// Pure parts of the registry client (challenges, errors, Retry-After) and the credential
// providers over real files and a real credential-helper executable.
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseWwwAuthenticate } from "../src/registry/challenge.js";
import {
  containersAuthCredentials,
  containersAuthPaths,
  defaultCredentials,
  dockerConfigCredentials,
  lookupAuthFile,
  parseRktDockerAuth,
  rktDockerAuthCredentials,
  runCredentialHelper,
} from "../src/registry/credentials.js";
import { RegistryError, parseRegistryErrors, parseRetryAfter } from "../src/registry/errors.js";
import { isPrivateHost } from "../src/registry/http.js";

const b64 = (s: string) => Buffer.from(s).toString("base64");

describe("parseWwwAuthenticate", () => {
  it("parses a distribution Bearer challenge", () => {
    expect(
      parseWwwAuthenticate(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"',
      ),
    ).toEqual([
      {
        scheme: "bearer",
        params: {
          realm: "https://auth.docker.io/token",
          service: "registry.docker.io",
          scope: "repository:library/alpine:pull",
        },
      },
    ]);
  });

  it("handles case, spaces, escapes, tokens and several challenges", () => {
    expect(
      parseWwwAuthenticate([
        'BASIC  Realm = "a \\"quoted\\" realm" , charset=UTF-8',
        'Bearer realm="r",error="insufficient_scope"',
      ]),
    ).toEqual([
      { scheme: "basic", params: { realm: 'a "quoted" realm', charset: "UTF-8" } },
      { scheme: "bearer", params: { realm: "r", error: "insufficient_scope" } },
    ]);
    expect(parseWwwAuthenticate('Negotiate abc==, Bearer realm="x"')).toEqual([
      { scheme: "negotiate", params: { token68: "abc==" } },
      { scheme: "bearer", params: { realm: "x" } },
    ]);
  });

  it("keeps a scope with several space-separated scopes and host:port names", () => {
    const [c] = parseWwwAuthenticate(
      'Bearer realm="r",scope="repository:a:pull repository:host:5000/b:pull,push"',
    );
    expect(c?.params["scope"]).toBe("repository:a:pull repository:host:5000/b:pull,push");
  });

  it("never throws on malformed input", () => {
    expect(parseWwwAuthenticate('Bearer realm="unterminated')).toEqual([{ scheme: "bearer", params: {} }]);
    expect(parseWwwAuthenticate("")).toEqual([]);
    expect(parseWwwAuthenticate(undefined)).toEqual([]);
    expect(parseWwwAuthenticate("=== ,,")).toEqual([]);
  });
});

describe("isPrivateHost", () => {
  it("knows loopback, private, link-local and mapped addresses, not public ones or names", () => {
    for (const h of [
      "127.0.0.1",
      "10.1.2.3",
      "172.31.0.1",
      "192.168.1.1",
      "169.254.169.254",
      "0.0.0.0",
      "[::1]",
      "::1",
      "fd00::1",
      "fe80::1",
      "::ffff:10.0.0.1",
      "localhost",
    ]) {
      expect(isPrivateHost(h), h).toBe(true);
    }
    for (const h of [
      "8.8.8.8",
      "172.32.0.1",
      "2001:db8::1",
      "::ffff:8.8.8.8",
      "registry-1.docker.io",
      "quay.io",
    ]) {
      expect(isPrivateHost(h), h).toBe(false);
    }
  });
});

describe("RegistryError", () => {
  it("maps statuses and registry codes to rkt codes and temporariness", () => {
    const unauthorized = new RegistryError(
      "x",
      401,
      parseRegistryErrors('{"errors":[{"code":"UNAUTHORIZED","message":"no"}]}'),
    );
    expect(unauthorized).toMatchObject({
      code: "RKT_UNAUTHORIZED",
      temporary: false,
      message: "x: HTTP 401 (UNAUTHORIZED: no)",
    });
    expect(new RegistryError("x", 403, [])).toMatchObject({
      code: "RKT_UNAUTHORIZED",
      message: "x: HTTP 403",
    });
    expect(new RegistryError("x", 404, [{ code: "BLOB_UNKNOWN" }])).toMatchObject({ code: "RKT_NOT_FOUND" });
    expect(new RegistryError("x", 400, [{ code: "MANIFEST_UNKNOWN" }])).toMatchObject({
      code: "RKT_NOT_FOUND",
    });
    expect(new RegistryError("x", 429, [])).toMatchObject({ code: "RKT_REGISTRY", temporary: true });
    expect(new RegistryError("x", 502, [])).toMatchObject({ code: "RKT_REGISTRY", temporary: true });
    expect(new RegistryError("x", 501, [])).toMatchObject({ code: "RKT_REGISTRY", temporary: false });
    expect(new RegistryError("x", 400, [{ code: "TOOMANYREQUESTS" }])).toMatchObject({ temporary: true });
  });

  it("parses error bodies leniently", () => {
    expect(parseRegistryErrors("<html>bad gateway</html>")).toEqual([]);
    expect(parseRegistryErrors('{"errors":[{"code":"lower","detail":{"a":1}},7]}')).toEqual([
      { code: "UNKNOWN", detail: { a: 1 } },
    ]);
  });

  it("reads Retry-After as seconds or an HTTP date", () => {
    expect(parseRetryAfter("3")).toBe(3000);
    expect(
      parseRetryAfter("Wed, 21 Oct 2015 07:28:10 GMT", Date.parse("Wed, 21 Oct 2015 07:28:00 GMT")),
    ).toBe(10_000);
    expect(parseRetryAfter("soon")).toBeUndefined();
    expect(parseRetryAfter(undefined)).toBeUndefined();
  });
});

describe("auth files", () => {
  it("picks the most specific key and decodes auth (passwords may hold colons)", () => {
    const file = {
      auths: {
        "quay.io": { auth: b64("host:pw") },
        "quay.io/org": { auth: b64("org:p:w") },
        "https://index.docker.io/v1/": { auth: b64("hub:pw") },
        "reg.example:5000": { identitytoken: "refresh-me" },
      },
    };
    expect(lookupAuthFile(file, "quay.io", "org/app", "f")).toEqual({ username: "org", password: "p:w" });
    expect(lookupAuthFile(file, "quay.io", "other/app", "f")).toEqual({ username: "host", password: "pw" });
    expect(lookupAuthFile(file, "docker.io", "library/alpine", "f")).toEqual({
      username: "hub",
      password: "pw",
    });
    expect(lookupAuthFile(file, "reg.example:5000", undefined, "f")).toEqual({ identityToken: "refresh-me" });
    expect(lookupAuthFile(file, "ghcr.io", "x", "f")).toBeUndefined();
    expect(() =>
      lookupAuthFile({ auths: { "a.io": { auth: b64("nocolon") } } }, "a.io", undefined, "f.json"),
    ).toThrow(
      expect.objectContaining({
        code: "RKT_INVALID_ARGUMENT",
        message: 'f.json: "auth" for a.io is not base64 of user:password',
      }),
    );
  });

  it("prefers a per-host helper, then credsStore", () => {
    const file = {
      auths: { "a.io": { auth: b64("u:p") } },
      credHelpers: { "a.io": "pass" },
      credsStore: "desktop",
    };
    expect(lookupAuthFile(file, "a.io", undefined, "f")).toEqual({ helper: "pass" });
    expect(lookupAuthFile(file, "b.io", undefined, "f")).toEqual({ helper: "desktop" });
  });

  it("lists containers auth.json paths in lookup order", () => {
    expect(
      containersAuthPaths({ REGISTRY_AUTH_FILE: "/x/auth.json", XDG_RUNTIME_DIR: "/run/user/1" }),
    ).toEqual(["/x/auth.json"]);
    expect(containersAuthPaths({ XDG_RUNTIME_DIR: "/run/user/1", HOME: "/home/u" })).toEqual([
      "/run/user/1/containers/auth.json",
      "/home/u/.config/containers/auth.json",
    ]);
  });

  it("validates rkt dockerAuth files", () => {
    expect(parseRktDockerAuth({ rktKind: "auth", rktVersion: "v1" }, "f")).toBeUndefined();
    expect(() =>
      parseRktDockerAuth(
        { rktKind: "dockerAuth", rktVersion: "v1", registries: [], credentials: {} },
        "f.json",
      ),
    ).toThrow(
      expect.objectContaining({
        code: "RKT_INVALID_ARGUMENT",
        message: expect.stringContaining('f.json: "registries"'),
      }),
    );
  });
});

describe("credential providers on disk", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "rkt-creds-"));
    // A docker credential helper speaking the protocol: host on stdin, JSON on stdout.
    await mkdir(join(dir, "bin"));
    const helper = join(dir, "bin", "docker-credential-fake");
    await writeFile(
      helper,
      [
        "#!/bin/sh",
        "read host",
        'case "$host" in',
        '  helper.io) echo \'{"ServerURL":"helper.io","Username":"hu","Secret":"hs"}\' ;;',
        '  token.io) echo \'{"ServerURL":"token.io","Username":"<token>","Secret":"refresh"}\' ;;',
        '  broken.io) echo "keyring locked" >&2; exit 3 ;;',
        '  *) echo "credentials not found in native keychain"; exit 1 ;;',
        "esac",
        "",
      ].join("\n"),
    );
    await chmod(helper, 0o755);
    await mkdir(join(dir, "docker"));
    await writeFile(
      join(dir, "docker", "config.json"),
      JSON.stringify({
        auths: { "inline.io": { auth: b64("iu:ip") } },
        credHelpers: { "helper.io": "fake", "token.io": "fake", "broken.io": "fake", "missing.io": "fake" },
      }),
    );
    await mkdir(join(dir, "run", "containers"), { recursive: true });
    await writeFile(
      join(dir, "run", "containers", "auth.json"),
      JSON.stringify({ auths: { "inline.io": { auth: b64("cu:cp") } } }),
    );
    for (const [sub, name, body] of [
      [
        "sys",
        "a.json",
        {
          rktKind: "dockerAuth",
          rktVersion: "v1",
          registries: ["rkt.io", "docker.io"],
          credentials: { user: "sys", password: "1" },
        },
      ],
      [
        "user",
        "b.json",
        {
          rktKind: "dockerAuth",
          rktVersion: "v1",
          registries: ["rkt.io"],
          credentials: { user: "usr", password: "2" },
        },
      ],
      [
        "user",
        "c.json",
        { rktKind: "auth", rktVersion: "v1", domains: ["x"], type: "basic", credentials: {} },
      ],
    ] as const) {
      await mkdir(join(dir, sub, "auth.d"), { recursive: true });
      await writeFile(join(dir, sub, "auth.d", name), JSON.stringify(body));
    }
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reads docker config.json: inline auth and helpers", async () => {
    const p = dockerConfigCredentials({
      env: { DOCKER_CONFIG: join(dir, "docker") },
      path: join(dir, "bin"),
    });
    expect(await p.credentialsFor("inline.io")).toEqual({ username: "iu", password: "ip" });
    expect(await p.credentialsFor("helper.io")).toEqual({ username: "hu", password: "hs" });
    expect(await p.credentialsFor("token.io")).toEqual({ identityToken: "refresh" });
    expect(await p.credentialsFor("missing.io")).toBeUndefined();
    expect(await p.credentialsFor("nowhere.io")).toBeUndefined();
    await expect(p.credentialsFor("broken.io")).rejects.toMatchObject({
      code: "RKT_IO",
      message: "docker-credential-fake get broken.io: exit 3: keyring locked",
    });
  });

  it("reports a helper that is not installed", async () => {
    await expect(runCredentialHelper("absent", "x.io", { path: join(dir, "bin") })).rejects.toMatchObject({
      code: "RKT_IO",
      message: expect.stringContaining("docker-credential-absent: cannot run"),
    });
    await expect(runCredentialHelper("../evil", "x.io")).rejects.toMatchObject({
      code: "RKT_INVALID_ARGUMENT",
    });
  });

  it("reads containers auth.json from XDG_RUNTIME_DIR", async () => {
    const p = containersAuthCredentials({
      env: { XDG_RUNTIME_DIR: join(dir, "run"), HOME: join(dir, "nohome") },
    });
    expect(await p.credentialsFor("inline.io")).toEqual({ username: "cu", password: "cp" });
  });

  it("reads rkt dockerAuth files, later config dirs overriding earlier ones", async () => {
    const p = rktDockerAuthCredentials([join(dir, "sys"), join(dir, "absent"), join(dir, "user")]);
    expect(await p.credentialsFor("rkt.io")).toEqual({ username: "usr", password: "2" });
    expect(await p.credentialsFor("docker.io")).toEqual({ username: "sys", password: "1" });
    expect(await p.credentialsFor("registry-1.docker.io")).toEqual({ username: "sys", password: "1" });
    expect(await p.credentialsFor("other.io")).toBeUndefined();
  });

  it("chains rkt, containers and docker configuration in that order", async () => {
    const p = defaultCredentials({
      rktConfigDirs: [join(dir, "user")],
      env: {
        DOCKER_CONFIG: join(dir, "docker"),
        XDG_RUNTIME_DIR: join(dir, "run"),
        HOME: join(dir, "nohome"),
      },
      path: join(dir, "bin"),
    });
    expect(await p.credentialsFor("rkt.io")).toEqual({ username: "usr", password: "2" });
    expect(await p.credentialsFor("inline.io")).toEqual({ username: "cu", password: "cp" });
    expect(await p.credentialsFor("helper.io")).toEqual({ username: "hu", password: "hs" });
  });
});
