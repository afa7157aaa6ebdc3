// Where rkt looks for policy.json and registries.d: rkt's config dirs (user > local > system),
// first found wins; containers' /etc/containers/policy.json is never read implicitly.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ErrorCode, isRktError } from "@rkt/oci";
import { findRegistriesD, findSignaturePolicy, registriesDPaths, signaturePolicyPaths } from "@rkt/trust";

const tmp = mkdtempSync(join(tmpdir(), "rkt-trust-discovery-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("signature policy discovery", () => {
  it("orders user, local, system config; the flag alone when given; never /etc/containers", () => {
    expect(
      signaturePolicyPaths({ userConfig: "/u", localConfig: "/etc/rkt", systemConfig: "/usr/lib/rkt" }),
    ).toEqual(["/u/policy.json", "/etc/rkt/policy.json", "/usr/lib/rkt/policy.json"]);
    expect(
      signaturePolicyPaths({ userConfig: "", localConfig: "/etc/rkt", systemConfig: "/usr/lib/rkt" }),
    ).toEqual(["/etc/rkt/policy.json", "/usr/lib/rkt/policy.json"]);
    expect(signaturePolicyPaths({ localConfig: "/etc/rkt", flag: "/p.json" })).toEqual(["/p.json"]);
  });

  it("reads the first existing file, strictly; none found is undefined; a required one must exist", async () => {
    const local = join(tmp, "local");
    const system = join(tmp, "system");
    mkdirSync(local);
    mkdirSync(system);
    const paths = signaturePolicyPaths({ localConfig: local, systemConfig: system });
    expect(await findSignaturePolicy(paths)).toBeUndefined();
    writeFileSync(join(system, "policy.json"), JSON.stringify({ default: [{ type: "reject" }] }));
    expect(await findSignaturePolicy(paths)).toEqual({
      path: join(system, "policy.json"),
      policy: { default: [{ type: "reject" }], transports: {} },
    });
    // The local file masks the system one, and is parsed strictly.
    writeFileSync(join(local, "policy.json"), JSON.stringify({ default: [{ type: "reject" }], extra: 1 }));
    await expect(findSignaturePolicy(paths)).rejects.toThrow(
      `${join(local, "policy.json")}: $.extra: unknown field`,
    );
    const missing = join(tmp, "nope.json");
    const e: unknown = await findSignaturePolicy([missing], { required: true }).catch((x: unknown) => x);
    expect(isRktError(e, ErrorCode.Io)).toBe(true);
    expect((e as Error).message).toMatch(new RegExp(`^signature policy ${missing}: ENOENT`));
  });
});

describe("registries.d discovery", () => {
  it("orders rkt's config dirs, then containers' per-user and system directories", () => {
    expect(
      registriesDPaths({ localConfig: "/etc/rkt", systemConfig: "/usr/lib/rkt", home: "/home/u" }),
    ).toEqual([
      "/etc/rkt/registries.d",
      "/usr/lib/rkt/registries.d",
      "/home/u/.config/containers/registries.d",
      "/etc/containers/registries.d",
    ]);
  });

  it("reads the first existing directory only; none is an empty config", async () => {
    const a = join(tmp, "a", "registries.d");
    const b = join(tmp, "b", "registries.d");
    mkdirSync(b, { recursive: true });
    writeFileSync(join(b, "x.yaml"), "default-docker:\n  lookaside: file:///b\n");
    expect(await findRegistriesD([a, b])).toEqual({
      dir: b,
      config: { defaultDocker: { lookaside: "file:///b" }, docker: {} },
    });
    mkdirSync(a, { recursive: true });
    expect(await findRegistriesD([a, b])).toEqual({ dir: a, config: { docker: {} } });
    expect(await findRegistriesD([join(tmp, "none")])).toEqual({ dir: undefined, config: { docker: {} } });
  });
});
