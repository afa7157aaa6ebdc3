// docker2aci's lib/tests/v22_test.go and internal_test.go, re-created on images built in memory.
import { describe, expect, it } from "vitest";
import { ErrorCode, isRktError, type ImageConfig } from "@rkt/oci";
import { convertImage, convertPorts, convertVolumes, parseDockerUser, toAppcOsArch } from "../src/index.js";
import { listAci, memoryImage, memorySink, testConfig } from "./helpers.js";

const oneFile = [[{ name: "thisisafile", body: "these are its contents", mode: 0o644 }]];

async function manifestOf(config: ImageConfig, layers = oneFile) {
  const s = memorySink();
  const [aci] = await convertImage(await memoryImage(layers, { config }), s.sink, { compression: "gzip" });
  return (await listAci(s.files.get(aci!.fileName)!)).manifest;
}

describe("TestFetchingByTagV22", () => {
  it("writes docker2aci's app, labels and nine annotations", async () => {
    const m = await manifestOf(testConfig);
    expect(m.acKind).toBe("ImageManifest");
    expect(m.name).toBe("127.0.0.1_5000/docker2aci/dockerv22test");
    expect(m.app).toEqual({
      exec: ["/bin/sh", "-c", "echo", "foo"],
      user: "0",
      group: "0",
      environment: [{ name: "FOO", value: "1" }],
      workingDirectory: "/",
      ports: [{ name: "80", protocol: "tcp", port: 80, count: 1, socketActivated: false }],
    });
    expect(m.labels).toEqual([
      { name: "arch", value: "amd64" },
      { name: "os", value: "linux" },
      { name: "version", value: "v0.1.0" },
    ]);
    const ann = Object.fromEntries((m.annotations ?? []).map((a) => [a.name, a.value]));
    expect((m.annotations ?? []).map((a) => a.name)).toEqual([
      "author",
      "created",
      "appc.io/docker/registryurl",
      "appc.io/docker/repository",
      "appc.io/docker/imageid",
      "appc.io/docker/manifesthash",
      "appc.io/docker/entrypoint",
      "appc.io/docker/cmd",
    ]);
    expect(ann["author"]).toBe("rkt developer <rkt-dev@googlegroups.com>");
    expect(ann["created"]).toBe("2016-06-02T21:43:31.291506236Z");
    expect(ann["appc.io/docker/registryurl"]).toBe("127.0.0.1:5000");
    expect(ann["appc.io/docker/repository"]).toBe("docker2aci/dockerv22test");
    expect(ann["appc.io/docker/entrypoint"]).toBe('["/bin/sh","-c","echo"]');
    expect(ann["appc.io/docker/cmd"]).toBe('["foo"]');
    expect(m.dependencies).toBeUndefined();
    expect(m.pathWhitelist).toBeUndefined();
  });

  it("adds originalname when the source knows it, and no version when pulled by digest", async () => {
    const s = memorySink();
    const img = await memoryImage(oneFile, {
      name: {
        registry: "127.0.0.1:5000",
        repository: "docker2aci/dockerv22test",
        originalName: "127.0.0.1:5000/docker2aci/dockerv22test@sha256:45b2",
      },
    });
    const [aci] = await convertImage(img, s.sink);
    const m = (await listAci(s.files.get(aci!.fileName)!)).manifest;
    expect(aci!.fileName).toBe("docker2aci-dockerv22test.aci");
    expect(m.labels?.map((l) => l.name)).toEqual(["arch", "os"]);
    expect(m.annotations?.[2]).toEqual({
      name: "appc.io/docker/originalname",
      value: "127.0.0.1:5000/docker2aci/dockerv22test@sha256:45b2",
    });
  });

  it.each([
    ["linux", "amd64", "linux", "amd64"],
    ["linux", "386", "linux", "i386"],
    ["linux", "arm64", "linux", "aarch64"],
    ["linux", "arm", "linux", "armv6l"],
    ["linux", "ppc64", "linux", "ppc64"],
    ["linux", "ppc64le", "linux", "ppc64le"],
    ["linux", "s390x", "linux", "s390x"],
    ["freebsd", "amd64", "freebsd", "amd64"],
    ["freebsd", "386", "freebsd", "i386"],
    ["freebsd", "arm", "freebsd", "arm"],
    ["darwin", "amd64", "darwin", "x86_64"],
    ["darwin", "386", "darwin", "i386"],
  ])("labels %s/%s as %s/%s", async (os, arch, appcOs, appcArch) => {
    const m = await manifestOf({ ...testConfig, os, architecture: arch });
    expect(m.labels).toEqual([
      { name: "arch", value: appcArch },
      { name: "os", value: appcOs },
      { name: "version", value: "v0.1.0" },
    ]);
  });

  it("TestFetchingMultipleLayersV22: two layers squash into one ACI with both files", async () => {
    const s = memorySink();
    const img = await memoryImage([
      [{ name: "thisisafile", body: "these are its contents" }],
      [{ name: "thisisadifferentfile", body: "the contents of this file are different from the last!" }],
    ]);
    const acis = await convertImage(img, s.sink);
    expect(acis).toHaveLength(1);
    const { entries } = await listAci(s.files.get(acis[0]!.fileName)!);
    expect(entries.find((e) => e.name === "rootfs/thisisafile")?.content).toBe("these are its contents");
    expect(entries.find((e) => e.name === "rootfs/thisisadifferentfile")?.content).toBe(
      "the contents of this file are different from the last!",
    );
  });
});

describe("TestOSArch / TestSetLabel", () => {
  it("has no labels for unknown or empty os/arch", async () => {
    expect(toAppcOsArch("", "")).toBeUndefined();
    expect(toAppcOsArch("TempleOS", "ia64")).toBeUndefined();
    expect(toAppcOsArch("linux", "")).toBeUndefined();
    const m = await manifestOf({ ...testConfig, os: "TempleOS", architecture: "ia64" });
    expect(m.labels).toEqual([{ name: "version", value: "v0.1.0" }]);
  });
});

describe("the app section", () => {
  it("maps User to user/group as docker2aci", () => {
    expect(parseDockerUser("")).toEqual({ user: "0", group: "0" });
    expect(parseDockerUser("daemon")).toEqual({ user: "daemon", group: "daemon" });
    expect(parseDockerUser("1000:50")).toEqual({ user: "1000", group: "50" });
    expect(parseDockerUser("a:b:c")).toEqual({ user: "a", group: "b" });
  });

  it("maps ports to <port>-<proto> sorted by name, and volumes to volume-<path> mount points", async () => {
    expect(convertPorts({ "53/udp": {}, "8080": {}, "443/tcp": {} })).toEqual([
      { name: "443-tcp", protocol: "tcp", port: 443, count: 1, socketActivated: false },
      { name: "53-udp", protocol: "udp", port: 53, count: 1, socketActivated: false },
      { name: "8080", protocol: "tcp", port: 8080, count: 1, socketActivated: false },
    ]);
    expect(convertVolumes({ "/var/lib/x y": {}, "/data": {}, "/var/lib/x_y": {} })).toEqual([
      { name: "volume-data", path: "/data", readOnly: false },
      { name: "volume-var-lib-x-y", path: "/var/lib/x y", readOnly: false },
      { name: "volume-var-lib-x-y-1", path: "/var/lib/x_y", readOnly: false },
    ]);
    const m = await manifestOf({
      ...testConfig,
      config: { User: "nobody:nogroup", Volumes: { "/data": {} }, Labels: { maintainer: "me" } },
    });
    expect(m.app).toEqual({
      user: "nobody",
      group: "nogroup",
      environment: [],
      mountPoints: [{ name: "volume-data", path: "/data", readOnly: false }],
      userLabels: { maintainer: "me" },
    });
  });

  it("drops env entries without '=' and keeps the last value of a repeated name", async () => {
    const m = await manifestOf({
      ...testConfig,
      config: { Env: ["A=1", "NOEQUALS", "B=x=y", "A=2", "EMPTY="] },
    });
    expect(m.app?.environment).toEqual([
      { name: "A", value: "2" },
      { name: "B", value: "x=y" },
      { name: "EMPTY", value: "" },
    ]);
  });

  it("writes no app section for a config without `config`", async () => {
    const { config: _drop, ...bare } = testConfig;
    const m = await manifestOf(bare);
    expect(m.app).toBeUndefined();
    expect(m.annotations?.some((a) => a.name === "appc.io/docker/entrypoint")).toBe(false);
  });

  it.each([
    [{ ExposedPorts: { "http/tcp": {} } }, /error parsing port "http"/],
    [{ Env: ["bad name=1"] }, /Env "bad name=1"/],
    [{ WorkingDir: "relative/dir" }, /WorkingDir "relative\/dir" is not absolute/],
  ])("refuses %j with RKT_INVALID_MANIFEST, writing nothing", async (config, message) => {
    const s = memorySink();
    const img = await memoryImage(oneFile, {
      config: { ...testConfig, config },
    });
    const err: unknown = await convertImage(img, s.sink).catch((e: unknown) => e);
    expect(isRktError(err, ErrorCode.InvalidManifest)).toBe(true);
    expect((err as Error).message).toMatch(message);
    expect(s.files.size).toBe(0);
  });
});
