import { ErrorCode, isRktError } from "@rkt/oci";
import { describe, expect, it } from "vitest";
import {
  parseImageManifest,
  parseImageManifestOrThrow,
  parsePodManifest,
  parsePodManifestOrThrow,
} from "@rkt/appc";

// The example of spec/aci.md.
const specExample = {
  acKind: "ImageManifest",
  acVersion: "0.8.11",
  name: "example.com/reduce-worker",
  labels: [
    { name: "version", value: "1.0.0" },
    { name: "arch", value: "amd64" },
    { name: "os", value: "linux" },
  ],
  app: {
    exec: ["/usr/bin/reduce-worker", "--quiet"],
    user: "100",
    group: "300",
    supplementaryGIDs: [400, 500],
    eventHandlers: [
      { exec: ["/usr/bin/data-downloader"], name: "pre-start" },
      { exec: ["/usr/bin/deregister-worker", "--verbose"], name: "post-stop" },
    ],
    workingDirectory: "/opt/work",
    environment: [{ name: "REDUCE_WORKER_DEBUG", value: "true" }],
    isolators: [
      { name: "resource/cpu", value: { request: "250m", limit: "500m" } },
      { name: "resource/memory", value: { request: "1G", limit: "2G" } },
      { name: "os/linux/capabilities-retain-set", value: { set: ["CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN"] } },
    ],
    mountPoints: [{ name: "work", path: "/var/lib/work", readOnly: false }],
    ports: [{ name: "health", port: 4000, protocol: "tcp", socketActivated: true }],
  },
  dependencies: [
    {
      imageName: "example.com/reduce-worker-base",
      imageID: "sha512-" + "a".repeat(128),
      labels: [
        { name: "os", value: "linux" },
        { name: "env", value: "canary" },
      ],
      size: 4096,
    },
  ],
  pathWhitelist: ["/etc/ca/example.com/crt", "/usr/bin/map-reduce-worker", "/opt/libs/reduce-toolkit.so"],
  annotations: [
    {
      name: "authors",
      value: "Carly Container <carly@example.com>, Nat Network <[nat@example.com](mailto:nat@example.com)>",
    },
    { name: "created", value: "2014-10-27T19:32:27.67021798Z" },
    { name: "documentation", value: "https://example.com/docs" },
    { name: "homepage", value: "https://example.com" },
  ],
};

function withPath(obj: unknown, path: (string | number)[], value: unknown): unknown {
  const copy = structuredClone(obj) as Record<string | number, unknown>;
  let cur = copy;
  for (const k of path.slice(0, -1)) cur = cur[k] as Record<string | number, unknown>;
  const last = path[path.length - 1]!;
  if (value === undefined) delete cur[last];
  else cur[last] = value;
  return copy;
}

function issues(doc: unknown) {
  const r = parseImageManifest(JSON.stringify(doc));
  if (r.ok) throw new Error("parsed");
  return r.issues;
}

describe("image manifest", () => {
  it("parses the spec example and keeps the raw bytes", () => {
    const bytes = new TextEncoder().encode(JSON.stringify(specExample));
    const r = parseImageManifest(bytes);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.raw).toBe(bytes);
    expect(r.value.name).toBe("example.com/reduce-worker");
    expect(r.value.app?.ports?.[0]?.count).toBe(1);
    expect(r.value.app?.exec).toEqual(["/usr/bin/reduce-worker", "--quiet"]);
    expect(r.value.dependencies?.[0]?.size).toBe(4096);
  });

  it("matches keys case-insensitively and ignores unknown keys, as Go's encoding/json", () => {
    const r = parseImageManifest(
      JSON.stringify({
        acKind: "ImageManifest",
        acVersion: "0.8.11",
        name: "x",
        app: { Exec: ["/bin/sh"], User: "0", Group: "0", supplementaryGids: [1] },
        extra: true,
      }),
    );
    expect(r.ok && r.value.app).toEqual({
      exec: ["/bin/sh"],
      user: "0",
      group: "0",
      supplementaryGIDs: [1],
      environment: [],
    });
  });

  it("treats null as absent, as Go's encoding/json does", () => {
    const r = parseImageManifest(
      JSON.stringify({ acKind: "ImageManifest", acVersion: "0.8.11", name: "x", labels: null, app: null }),
    );
    expect(r.ok && r.value).toEqual({ acKind: "ImageManifest", acVersion: "0.8.11", name: "x" });
  });

  it("defaults an absent environment to [] and allows an empty or relative exec", () => {
    const r = parseImageManifest(
      JSON.stringify({
        acKind: "ImageManifest",
        acVersion: "0.8.11",
        name: "x",
        app: { exec: ["sh"], user: "0", group: "0" },
      }),
    );
    expect(r.ok && r.value.app?.environment).toEqual([]);
  });

  it.each<[string, (string | number)[], unknown, string, string]>([
    ["missing acKind", ["acKind"], undefined, "$.acKind", 'missing or bad ACKind (must be "ImageManifest")'],
    ["wrong acKind", ["acKind"], "PodManifest", "$.acKind", "bad ACKind: PodManifest"],
    ["missing acVersion", ["acVersion"], undefined, "$.acVersion", "required field is missing"],
    [
      "acVersion 1",
      ["acVersion"],
      "1",
      "$.acVersion",
      "acVersion must be a SemVer 2.0 version such as 0.8.11",
    ],
    [
      "acVersion v1.2.3",
      ["acVersion"],
      "v1.2.3",
      "$.acVersion",
      "acVersion must be a SemVer 2.0 version such as 0.8.11",
    ],
    [
      "acVersion 1.2.3.4",
      ["acVersion"],
      "1.2.3.4",
      "$.acVersion",
      "acVersion must be a SemVer 2.0 version such as 0.8.11",
    ],
    ["acVersion 0.0.0", ["acVersion"], "0.0.0", "$.acVersion", "acVersion must not be the zero version"],
    ["acVersion number", ["acVersion"], 1, "$.acVersion", "acVersion must be a string"],
    [
      "bad name",
      ["name"],
      "Example.com/x",
      "$.name",
      'ACIdentifier must contain only lower case alphanumeric characters plus "-._~/"',
    ],
    ["empty name", ["name"], "", "$.name", "ACIdentifier cannot be empty"],
    [
      "duplicate label",
      ["labels", 1],
      { name: "version", value: "2" },
      "$.labels[1].name",
      'duplicate labels of name "version"',
    ],
    [
      "label called name",
      ["labels", 0],
      { name: "name", value: "x" },
      "$.labels[0].name",
      'invalid label name: "name"',
    ],
    [
      "bad arch",
      ["labels", 1],
      { name: "arch", value: "arm64" },
      "$.labels",
      'bad arch "arm64" for linux (must be one of: [amd64 i386 aarch64 aarch64_be armv6l armv7l armv7b ppc64 ppc64le s390x])',
    ],
    [
      "exec not strings",
      ["app", "exec", 0],
      1,
      "$.app.exec[0]",
      "Invalid input: expected string, received number",
    ],
    ["missing user", ["app", "user"], undefined, "$.app.user", "user is required"],
    ["empty group", ["app", "group"], "", "$.app.group", "group is required"],
    [
      "relative workingDirectory",
      ["app", "workingDirectory"],
      "opt",
      "$.app.workingDirectory",
      "workingDirectory must be an absolute path",
    ],
    [
      "bad event handler",
      ["app", "eventHandlers", 0, "name"],
      "pre-stop",
      "$.app.eventHandlers[0].name",
      'bad eventHandler "name": "pre-stop"',
    ],
    [
      "empty event handler",
      ["app", "eventHandlers", 0, "name"],
      "",
      "$.app.eventHandlers[0].name",
      'eventHandler "name" cannot be empty',
    ],
    [
      "duplicate event handler",
      ["app", "eventHandlers", 1, "name"],
      "pre-start",
      "$.app.eventHandlers[1].name",
      'Only one eventHandler of name "pre-start" allowed',
    ],
    [
      "bad env name",
      ["app", "environment", 0, "name"],
      "1X",
      "$.app.environment[0].name",
      "environment variable name must match [A-Za-z_][A-Za-z_0-9.-]*",
    ],
    [
      "duplicate env",
      ["app", "environment", 1],
      { name: "REDUCE_WORKER_DEBUG", value: "x" },
      "$.app.environment[1].name",
      'duplicate environment variables of name "REDUCE_WORKER_DEBUG"',
    ],
    [
      "bad mountPoint name",
      ["app", "mountPoints", 0, "name"],
      "work_dir",
      "$.app.mountPoints[0].name",
      'ACName must contain only lower case alphanumeric characters plus "-"',
    ],
    [
      "mountPoint without path",
      ["app", "mountPoints", 0, "path"],
      undefined,
      "$.app.mountPoints[0].path",
      "required field is missing",
    ],
    ["port 0", ["app", "ports", 0, "port"], 0, "$.app.ports[0].port", "port must be in 1-65535 range"],
    [
      "port 70000",
      ["app", "ports", 0, "port"],
      70000,
      "$.app.ports[0].port",
      "port must be in 1-65535 range",
    ],
    [
      "port range overflow",
      ["app", "ports", 0, "count"],
      62000,
      "$.app.ports[0].count",
      "end of port range must be in 1-65535 range",
    ],
    [
      "port without protocol",
      ["app", "ports", 0, "protocol"],
      undefined,
      "$.app.ports[0].protocol",
      "required field is missing",
    ],
    [
      "isolator name",
      ["app", "isolators", 0, "name"],
      "Resource/CPU",
      "$.app.isolators[0].name",
      'ACIdentifier must contain only lower case alphanumeric characters plus "-._~/"',
    ],
    [
      "duplicate annotation",
      ["annotations", 1, "name"],
      "authors",
      "$.annotations[1].name",
      'duplicate annotations of name "authors"',
    ],
    [
      "bad created",
      ["annotations", 1, "value"],
      "yesterday",
      "$.annotations[1].value",
      'created annotation must be an RFC 3339 date: "yesterday"',
    ],
    [
      "ftp homepage",
      ["annotations", 3, "value"],
      "ftp://example.com",
      "$.annotations[3].value",
      "homepage annotation must be an http or https URL",
    ],
    [
      "bad dependency name",
      ["dependencies", 0, "imageName"],
      "",
      "$.dependencies[0].imageName",
      "ACIdentifier cannot be empty",
    ],
    [
      "sha256 imageID",
      ["dependencies", 0, "imageID"],
      "sha256-" + "a".repeat(64),
      "$.dependencies[0].imageID",
      "unrecognized hash type: sha256",
    ],
    [
      "negative size",
      ["dependencies", 0, "size"],
      -1,
      "$.dependencies[0].size",
      "size must be a non-negative integer",
    ],
    [
      "dependency label",
      ["dependencies", 0, "labels", 0, "value"],
      "plan9",
      "$.dependencies[0].labels",
      'bad os "plan9" (must be one of: [darwin freebsd linux])',
    ],
    [
      "relative whitelist",
      ["pathWhitelist", 1],
      "usr/bin",
      "$.pathWhitelist[1]",
      "pathWhitelist entry must be an absolute path",
    ],
  ])("refuses %s", (_what, path, value, where, message) => {
    expect(issues(withPath(specExample, path, value))).toContainEqual({ path: where, message });
  });

  it("refuses duplicate JSON keys (I-JSON)", () => {
    const r = parseImageManifest('{"acKind":"ImageManifest","acKind":"ImageManifest"}');
    expect(r.ok).toBe(false);
    expect(!r.ok && r.issues[0]?.message).toMatch(/duplicate/);
  });

  it("refuses a non-object", () => {
    expect(issues([])).toEqual([{ path: "$", message: "Invalid input: expected object, received array" }]);
  });

  // spec/aci.md's example pins its dependency as "sha512-..."; appc's types.Hash accepts any
  // non-empty value after "sha512-".
  it("accepts the spec's own dependency imageID, sha512-...", () => {
    const r = parseImageManifest(
      JSON.stringify(withPath(specExample, ["dependencies", 0, "imageID"], "sha512-...")),
    );
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.value.dependencies?.[0]?.imageID).toBe("sha512-...");
  });

  it("throws RKT_INVALID_MANIFEST naming the input and the first issue", () => {
    try {
      parseImageManifestOrThrow(JSON.stringify(withPath(specExample, ["app", "user"], "")), "hello.aci");
      expect.unreachable();
    } catch (e) {
      expect(isRktError(e, ErrorCode.InvalidManifest)).toBe(true);
      expect((e as Error).message).toBe("hello.aci: $.app.user: user is required");
    }
    expect(parseImageManifestOrThrow(JSON.stringify(specExample)).value.acVersion).toBe("0.8.11");
  });
});

const pod = {
  acVersion: "0.8.11",
  acKind: "PodManifest",
  apps: [
    {
      name: "reduce-worker",
      image: { name: "example.com/reduce-worker", id: "sha512-" + "b".repeat(64) },
      app: { exec: ["/bin/rw"], user: "0", group: "0" },
      mounts: [{ volume: "work", path: "/mnt/foo" }],
    },
  ],
  volumes: [
    { name: "work", kind: "host", source: "/opt/tenant1/work", readOnly: true },
    { name: "scratch", kind: "empty", mode: "0755", uid: 0, gid: 0 },
  ],
  ports: [{ name: "health", hostPort: 4000 }],
};

describe("pod manifest", () => {
  it("parses a pod manifest", () => {
    const r = parsePodManifestOrThrow(JSON.stringify(pod));
    expect(r.value.apps[0]?.name).toBe("reduce-worker");
    expect(r.value.volumes?.[1]?.kind).toBe("empty");
  });
  // spec/pods.md's example names each app's image as "sha512-...".
  it("accepts the spec's own image id, sha512-...", () => {
    expect(parsePodManifest(JSON.stringify(withPath(pod, ["apps", 0, "image", "id"], "sha512-..."))).ok).toBe(
      true,
    );
  });
  it("accepts a template without image ids", () => {
    expect(parsePodManifest(JSON.stringify(withPath(pod, ["apps", 0, "image", "id"], undefined))).ok).toBe(
      true,
    );
  });
  it.each<[string, (string | number)[], unknown, string, string]>([
    ["wrong kind", ["acKind"], "ImageManifest", "$.acKind", "bad ACKind: ImageManifest"],
    [
      "bad app name",
      ["apps", 0, "name"],
      "Reduce",
      "$.apps[0].name",
      'ACName must contain only lower case alphanumeric characters plus "-"',
    ],
    [
      "duplicate app",
      ["apps", 1],
      { name: "reduce-worker", image: {} },
      "$.apps[1].name",
      'duplicate apps of name "reduce-worker"',
    ],
    [
      "image id with two dashes",
      ["apps", 0, "image", "id"],
      "sha512-ab-cd",
      "$.apps[0].image.id",
      "badly formatted hash string",
    ],
    [
      "image id without a value",
      ["apps", 0, "image", "id"],
      "sha512-",
      "$.apps[0].image.id",
      "unexpected empty hash value",
    ],
    [
      "image id without a type",
      ["apps", 0, "image", "id"],
      "-abc",
      "$.apps[0].image.id",
      "unexpected empty hash type",
    ],
    [
      "relative host source",
      ["volumes", 0, "source"],
      "opt",
      "$.volumes[0].source",
      "source for host volume must be absolute path",
    ],
    [
      "empty with source",
      ["volumes", 1, "source"],
      "/x",
      "$.volumes[1].source",
      "source for empty volume must be empty",
    ],
    ["bad kind", ["volumes", 0, "kind"], "nfs", "$.volumes[0].kind", 'volume kind must be "host" or "empty"'],
    [
      "duplicate volume",
      ["volumes", 1, "name"],
      "work",
      "$.volumes[1].name",
      'duplicate volumes of name "work"',
    ],
    [
      "bad mode",
      ["volumes", 1, "mode"],
      "rwx",
      "$.volumes[1].mode",
      "volume mode must be an octal string such as 0755",
    ],
  ])("refuses %s", (_what, path, value, where, message) => {
    const r = parsePodManifest(JSON.stringify(withPath(pod, path, value)));
    expect(r.ok).toBe(false);
    expect(!r.ok && r.issues).toContainEqual({ path: where, message });
  });
  it("throws RKT_INVALID_MANIFEST", () => {
    expect(() => parsePodManifestOrThrow("{}", "pod.json")).toThrow(
      /^pod\.json: \$\.acVersion: required field is missing \(and 1 more\)$/,
    );
  });
});

// Isolator values by appc's types (schema/types/isolator_*.go); cases written from their rules.
describe("isolators", () => {
  const withIsolators = (isolators: unknown[]) => withPath(specExample, ["app", "isolators"], isolators);
  const ok: [string, unknown][] = [
    ["resource/cpu", { request: "250m", limit: "500m" }],
    ["resource/cpu", { limit: 2 }],
    ["resource/memory", { request: "1G", limit: "2Gi" }],
    ["resource/memory", { Limit: "1.5e9", default: false }],
    ["resource/block-bandwidth", { default: true, limit: "10M" }],
    ["resource/network-bandwidth", { default: true, limit: "1G" }],
    ["os/linux/capabilities-retain-set", { set: ["CAP_NET_BIND_SERVICE"] }],
    // appc does not check capability names.
    ["os/linux/capabilities-remove-set", { set: ["CAP_PONIES"] }],
    ["os/linux/no-new-privileges", true],
    ["os/linux/seccomp-retain-set", { set: ["@rkt/default-whitelist"], errno: "ENOTSUP" }],
    ["os/linux/seccomp-remove-set", { set: ["reboot"] }],
    ["os/linux/oom-score-adj", -1000],
    ["os/linux/cpu-shares", 2],
    ["os/linux/cpu-shares", 262144],
    [
      "os/linux/selinux-context",
      { user: "system_u", role: "system_r", type: "svirt_lxc_net_t", level: "s0:c1" },
    ],
    ["os/unix/sysctl", { "net.ipv4.tcp_rfc1337": "1" }],
    // A name appc does not know keeps any value.
    ["example.com/ponies", { anything: [1, 2] }],
  ];
  it.each(ok)("accepts %s %j", (name, value) => {
    const r = parseImageManifest(JSON.stringify(withIsolators([{ name, value }])));
    expect(r.ok ? [] : r.issues).toEqual([]);
  });

  const bad: [string, unknown, string, string][] = [
    [
      "os/linux/cpu-shares",
      1,
      "$.app.isolators[0].value",
      "os/linux/cpu-shares must be between 2 and 262144, got 1",
    ],
    [
      "os/linux/cpu-shares",
      262145,
      "$.app.isolators[0].value",
      "os/linux/cpu-shares must be between 2 and 262144, got 262145",
    ],
    ["os/linux/cpu-shares", "1024", "$.app.isolators[0].value", "os/linux/cpu-shares must be an integer"],
    [
      "os/linux/oom-score-adj",
      -2500,
      "$.app.isolators[0].value",
      "os/linux/oom-score-adj must be between -1000 and 1000, got -2500",
    ],
    ["os/linux/oom-score-adj", 1.5, "$.app.isolators[0].value", "os/linux/oom-score-adj must be an integer"],
    ["os/linux/no-new-privileges", "yes", "$.app.isolators[0].value", "value must be a boolean"],
    ["os/linux/no-new-privileges", null, "$.app.isolators[0].value", "required field is missing"],
    [
      "os/linux/capabilities-retain-set",
      { set: [] },
      "$.app.isolators[0].value.set",
      "set must be non-empty",
    ],
    ["os/linux/capabilities-remove-set", {}, "$.app.isolators[0].value.set", "set must be non-empty"],
    [
      "os/linux/capabilities-retain-set",
      { set: "CAP_KILL" },
      "$.app.isolators[0].value.set",
      "set must be a list of strings",
    ],
    [
      "os/linux/capabilities-retain-set",
      ["CAP_KILL"],
      "$.app.isolators[0].value",
      "a capabilities set must be an object",
    ],
    ["os/linux/seccomp-retain-set", { set: [] }, "$.app.isolators[0].value.set", "set must be non-empty"],
    [
      "os/linux/seccomp-remove-set",
      { set: ["reboot"], errno: "eperm" },
      "$.app.isolators[0].value.errno",
      "errno must be an upper case string",
    ],
    [
      "resource/memory",
      { default: true, limit: "1G" },
      "$.app.isolators[0].value.default",
      "default must be false",
    ],
    ["resource/cpu", { limit: "2Mk" }, "$.app.isolators[0].value.limit", "unable to parse quantity's suffix"],
    [
      "resource/cpu",
      { limit: "10mm" },
      "$.app.isolators[0].value.limit",
      "unable to parse quantity's suffix",
    ],
    [
      "resource/memory",
      { request: "1.5Gi" },
      "$.app.isolators[0].value.request",
      "numbers with binary-style SI suffixes can't have fractional parts",
    ],
    [
      "resource/memory",
      { limit: "1.2.3G" },
      "$.app.isolators[0].value.limit",
      "unable to parse numeric part of quantity",
    ],
    [
      "resource/memory",
      { limit: "lots" },
      "$.app.isolators[0].value.limit",
      "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
    ],
    ["resource/memory", "1G", "$.app.isolators[0].value", "a resource isolator value must be an object"],
    ["resource/block-iops", { limit: "100" }, "$.app.isolators[0].value.default", "default must be true"],
    [
      "resource/network-bandwidth",
      { default: true, request: "1M", limit: "1G" },
      "$.app.isolators[0].value.request",
      "request not supported by this resource, must be empty",
    ],
    [
      "os/linux/selinux-context",
      { user: "system_u", role: "a:b", type: "t", level: "s0" },
      "$.app.isolators[0].value.role",
      'invalid role value "a:b"',
    ],
    [
      "os/linux/selinux-context",
      { user: "u", role: "r", type: "t" },
      "$.app.isolators[0].value.level",
      'invalid level value ""',
    ],
    [
      "os/unix/sysctl",
      { "net.ipv4.tcp_rfc1337": 1 },
      "$.app.isolators[0].value",
      "os/unix/sysctl must be an object of strings",
    ],
  ];
  it.each(bad)("refuses %s %j", (name, value, path, message) => {
    expect(issues(withIsolators([{ name, value }]))).toEqual([{ path, message }]);
  });

  it("refuses a second isolator of a single-instance type and conflicting seccomp sets", () => {
    expect(
      issues(
        withIsolators([
          { name: "os/linux/cpu-shares", value: 512 },
          { name: "os/linux/no-new-privileges", value: true },
          { name: "os/linux/no-new-privileges", value: false },
          { name: "os/linux/cpu-shares", value: 1024 },
        ]),
      ),
    ).toEqual([
      {
        path: "$.app.isolators[3].name",
        message: "isolators set contains too many instances of type os/linux/cpu-shares",
      },
    ]);
    expect(
      issues(
        withIsolators([
          { name: "os/linux/seccomp-retain-set", value: { set: ["read"] } },
          { name: "os/linux/seccomp-remove-set", value: { set: ["reboot"] } },
        ]),
      ),
    ).toEqual([{ path: "$.app.isolators[1].name", message: "isolators set contains incompatible types" }]);
  });

  it("checks a pod's isolators and its apps' overrides alike", () => {
    const r = parsePodManifest(
      JSON.stringify({
        ...pod,
        isolators: [{ name: "resource/memory", value: { limit: "1e" } }],
        apps: [
          {
            ...pod.apps[0],
            app: { ...pod.apps[0]!.app, isolators: [{ name: "os/linux/cpu-shares", value: 0 }] },
          },
        ],
      }),
    );
    expect(r.ok ? [] : r.issues).toEqual([
      {
        path: "$.apps[0].app.isolators[0].value",
        message: "os/linux/cpu-shares must be between 2 and 262144, got 0",
      },
      { path: "$.isolators[0].value.limit", message: "unable to parse quantity's suffix" },
    ]);
  });
});
