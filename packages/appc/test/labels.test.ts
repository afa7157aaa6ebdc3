import { ErrorCode, isRktError } from "@rkt/oci";
import { describe, expect, it } from "vitest";
import { isValidOSArch, labelProblems, osArchProblem, parseLabels, validOSArch, versionOf } from "@rkt/appc";

describe("os/arch whitelist", () => {
  it("matches appc's labels.go table", () => {
    expect(validOSArch).toEqual({
      linux: [
        "amd64",
        "i386",
        "aarch64",
        "aarch64_be",
        "armv6l",
        "armv7l",
        "armv7b",
        "ppc64",
        "ppc64le",
        "s390x",
      ],
      freebsd: ["amd64", "i386", "arm"],
      darwin: ["x86_64", "i386"],
    });
  });
  it.each([
    ["linux", "amd64"],
    ["linux", "s390x"],
    ["freebsd", "arm"],
    ["darwin", "x86_64"],
    ["linux", undefined],
  ])("accepts %s/%s", (os, arch) => {
    expect(isValidOSArch(os, arch)).toBe(true);
  });
  it("refuses an unknown os listing the valid ones sorted", () => {
    expect(osArchProblem(new Map([["os", "windows"]]))).toBe(
      'bad os "windows" (must be one of: [darwin freebsd linux])',
    );
    expect(isValidOSArch("windows")).toBe(false);
  });
  it("refuses an arch not valid for the os", () => {
    expect(
      osArchProblem(
        new Map([
          ["os", "darwin"],
          ["arch", "amd64"],
        ]),
      ),
    ).toBe('bad arch "amd64" for darwin (must be one of: [x86_64 i386])');
    expect(isValidOSArch("linux", "arm64")).toBe(false);
  });
  it("does not check arch without os", () => {
    expect(osArchProblem(new Map([["arch", "nonsense"]]))).toBeUndefined();
  });
  it("does not treat inherited object keys as an os", () => {
    expect(osArchProblem(new Map([["os", "constructor"]]))).toContain('bad os "constructor"');
  });
});

describe("label lists", () => {
  it("parses to a map in order", () => {
    const m = parseLabels([
      { name: "version", value: "1.0" },
      { name: "os", value: "linux" },
      { name: "arch", value: "amd64" },
    ]);
    expect([...m.keys()]).toEqual(["version", "os", "arch"]);
    expect(versionOf(m)).toBe("1.0");
    expect(versionOf([{ name: "version", value: "2" }])).toBe("2");
    expect(versionOf([])).toBeUndefined();
  });
  it.each([
    [[{ name: "name", value: "x" }], 'invalid label name: "name"', 0],
    [
      [{ name: "Version", value: "x" }],
      'invalid label name "Version": ACIdentifier must contain only lower case alphanumeric characters plus "-._~/"',
      0,
    ],
    [
      [
        { name: "a", value: "1" },
        { name: "a", value: "2" },
      ],
      'duplicate labels of name "a"',
      1,
    ],
    [[{ name: "os", value: "plan9" }], 'bad os "plan9" (must be one of: [darwin freebsd linux])', undefined],
  ])("refuses %j", (labels, message, index) => {
    expect(labelProblems(labels)).toEqual([{ index, message }]);
    try {
      parseLabels(labels);
      expect.unreachable();
    } catch (e) {
      expect(isRktError(e, ErrorCode.InvalidName)).toBe(true);
      expect((e as Error).message).toBe(`invalid labels: ${message}`);
    }
  });
});
