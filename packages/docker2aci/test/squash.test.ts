import { describe, expect, it } from "vitest";
import { convertImage } from "../src/index.js";
import { listAci, memoryImage, memorySink, names } from "./helpers.js";

async function squash(layers: Parameters<typeof memoryImage>[0], o: Parameters<typeof memoryImage>[1] = {}) {
  const img = await memoryImage(layers, o);
  const s = memorySink();
  const [aci] = await convertImage(img, s.sink, { compression: "none" });
  const file = s.files.get(aci!.fileName)!;
  return { aci: aci!, file, s, ...(await listAci(file)) };
}

describe("squashing", () => {
  it("lets upper layers win and applies whiteouts", async () => {
    const r = await squash([
      [
        { name: "etc/", type: "directory" },
        { name: "etc/a", body: "lower a" },
        { name: "etc/b", body: "lower b" },
        { name: "etc/c", body: "lower c" },
      ],
      [{ name: "etc/a", body: "upper a" }, { name: "etc/.wh.b" }],
    ]);
    expect(names(r.entries)).toEqual([
      "dev/fd",
      "dev/stderr",
      "dev/stdin",
      "dev/stdout",
      "etc",
      "etc/a",
      "etc/c",
    ]);
    expect(r.entries.find((e) => e.name === "rootfs/etc/a")?.content).toBe("upper a");
    expect(r.imageId).toBe(r.aci.imageId);
    expect(r.aci.fileName).toBe("docker2aci-dockerv22test-v0.1.0.aci");
  });
});
