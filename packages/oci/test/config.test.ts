import { describe, expect, it } from "vitest";
import { ErrorCode, isRktError, parseImageConfig, parseImageConfigOrThrow, type ParseResult } from "@rkt/oci";

const d = (c: string) => `sha256:${c.repeat(64)}`;
const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

function config(over: Record<string, unknown> = {}, inner: Record<string, unknown> = {}) {
  return {
    created: "2015-10-31T22:22:56.015925234Z",
    author: "Alyssa P. Hacker <alyspdev@example.com>",
    architecture: "amd64",
    os: "linux",
    config: {
      User: "alice",
      ExposedPorts: { "8080/tcp": {}, "53/udp": {}, "9000": {}, "2905/sctp": {} },
      Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "EMPTY=", "FOO=a=b"],
      Entrypoint: ["/bin/my-app-binary"],
      Cmd: ["--foreground", "--config", "/etc/my-app.d/default.cfg"],
      Volumes: { "/var/job-result-data": {}, "/var/log/my-app-logs": {} },
      WorkingDir: "/home/alice",
      Labels: { "com.example.project.git.url": "https://example.com/project.git" },
      StopSignal: "SIGTERM",
      ...inner,
    },
    rootfs: { diff_ids: [d("c"), d("5")], type: "layers" },
    history: [
      { created: "2015-10-31T22:22:54.690851953Z", created_by: "/bin/sh -c #(nop) ADD file:a3bc1e in /" },
      {
        created: "2015-10-31T22:22:55.613815829Z",
        created_by: '/bin/sh -c #(nop) CMD ["sh"]',
        empty_layer: true,
      },
      { created: "2015-10-31T22:22:56+01:00", created_by: "/bin/sh -c apk add curl" },
    ],
    ...over,
  };
}

function only<T>(r: ParseResult<T>) {
  if (r.ok) throw new Error(`expected a failure, got ${JSON.stringify(r.value)}`);
  return r.issues[0]!;
}

describe("parseImageConfig", () => {
  it("accepts a full OCI config", () => {
    const r = parseImageConfig(json(config()));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.rootfs.diff_ids).toEqual([d("c"), d("5")]);
    expect(r.value.config?.Env).toHaveLength(3);
    expect(r.value.history?.[1]?.empty_layer).toBe(true);
  });

  it("accepts a minimal config and a Docker config full of nulls", () => {
    expect(
      parseImageConfig(json({ architecture: "arm64", os: "linux", rootfs: { type: "layers", diff_ids: [] } }))
        .ok,
    ).toBe(true);
    const docker = {
      architecture: "amd64",
      os: "linux",
      variant: null,
      container: "3f1a",
      docker_version: "1.8.2",
      config: {
        Cmd: null,
        Entrypoint: null,
        OnBuild: null,
        Volumes: null,
        Labels: null,
        Env: null,
        ArgsEscaped: true,
        Memory: 0,
        Healthcheck: { Test: ["NONE"] },
      },
      container_config: { Cmd: ["/bin/sh"] },
      rootfs: { type: "layers", diff_ids: [d("a")] },
      history: null,
    };
    const r = parseImageConfig(json(docker));
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.value.config?.Cmd).toBeUndefined();
      expect(r.value.variant).toBeUndefined();
    }
  });

  const bad: [string, Record<string, unknown>, string, RegExp][] = [
    [
      "missing architecture",
      config({ architecture: undefined }),
      "$.architecture",
      /required field is missing/,
    ],
    ["empty os", config({ os: "" }), "$.os", /os must not be empty/],
    ["missing rootfs", config({ rootfs: undefined }), "$.rootfs", /required field is missing/],
    [
      "an unknown rootfs.type",
      config({ rootfs: { type: "tarball", diff_ids: [] } }),
      "$.rootfs.type",
      /rootfs.type must be "layers"/,
    ],
    [
      "a bad diff_id",
      config({ rootfs: { type: "layers", diff_ids: [d("a"), "sha256:zz"] } }),
      "$.rootfs.diff_ids[1]",
      /invalid digest/,
    ],
    [
      "a created date that is not RFC 3339",
      config({ created: "2015-10-31 22:22:56" }),
      "$.created",
      /RFC 3339/,
    ],
    ["a created month 13", config({ created: "2015-13-31T22:22:56Z" }), "$.created", /RFC 3339/],
    [
      "a bad history date",
      config({ history: [{ created: "yesterday" }] }),
      "$.history[0].created",
      /RFC 3339/,
    ],
    [
      "a non-boolean empty_layer",
      config({ history: [{ empty_layer: "yes" }] }),
      "$.history[0].empty_layer",
      /expected boolean/,
    ],
  ];
  for (const [name, doc, path, message] of bad) {
    it(`refuses ${name}`, () => {
      const i = only(parseImageConfig(json(doc)));
      expect(i.path).toBe(path);
      expect(i.message).toMatch(message);
    });
  }

  const badInner: [string, Record<string, unknown>, string, RegExp][] = [
    ["an Env entry without =", { Env: ["PATH=/bin", "JUSTNAME"] }, "$.config.Env[1]", /NAME=value/],
    ["an Env entry with an empty name", { Env: ["=value"] }, "$.config.Env[0]", /NAME=value/],
    ["a null Env entry", { Env: [null] }, "$.config.Env[0]", /expected string/],
    [
      "a port with a bad protocol",
      { ExposedPorts: { "80/http": {} } },
      '$.config.ExposedPorts["80/http"]',
      /not port\[/,
    ],
    [
      "a port out of range",
      { ExposedPorts: { "70000/tcp": {} } },
      '$.config.ExposedPorts["70000/tcp"]',
      /not port\[/,
    ],
    [
      "a port range",
      { ExposedPorts: { "80-90/tcp": {} } },
      '$.config.ExposedPorts["80-90/tcp"]',
      /not port\[/,
    ],
    [
      "a port value that is not an object",
      { ExposedPorts: { "80": true } },
      '$.config.ExposedPorts["80"]',
      /expected object/,
    ],
    ["a Cmd string", { Cmd: "sh" }, "$.config.Cmd", /expected array/],
    ["a numeric label", { Labels: { a: 1 } }, "$.config.Labels.a", /expected string/],
    ["a Volumes list", { Volumes: ["/data"] }, "$.config.Volumes", /expected record|expected object/],
  ];
  for (const [name, inner, path, message] of badInner) {
    it(`refuses ${name}`, () => {
      const i = only(parseImageConfig(json(config({}, inner))));
      expect(i.path).toBe(path);
      expect(i.message).toMatch(message);
    });
  }

  it("throws RKT_INVALID_MANIFEST naming the input", () => {
    expect(() => parseImageConfigOrThrow(json(config({ os: "" })), `config ${d("b")}`)).toThrow(
      `config ${d("b")}: $.os: os must not be empty`,
    );
    try {
      parseImageConfigOrThrow("{}");
    } catch (e) {
      expect(isRktError(e, ErrorCode.InvalidManifest)).toBe(true);
      expect((e as Error).message).toMatch(
        /^image config: \$\.architecture: required field is missing \(and 2 more\)$/,
      );
    }
  });
});
