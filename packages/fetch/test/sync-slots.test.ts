// The slots a sync bounds its stages with: at most `size` holders, first come first served; a
// holder that parks lets the next one in and takes a slot again afterwards, overlapping parks
// included, without ever holding two; an abort rejects every wait.
import { describe, expect, it } from "vitest";
import { ErrorCode } from "@rkt/oci";
import { Slots } from "../src/sync/slots.js";

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe("Slots", () => {
  it("lets `size` holders in, the next when one releases, in the order asked", async () => {
    const s = new Slots(2);
    const order: number[] = [];
    const a = await s.take();
    const b = await s.take();
    const c = s.take().then((x) => (order.push(3), x));
    const d = s.take().then((x) => (order.push(4), x));
    await tick();
    expect(order).toEqual([]);
    a.release();
    a.release(); // once only
    await tick();
    expect(order).toEqual([3]);
    b.release();
    await tick();
    expect(order).toEqual([3, 4]);
    (await c).release();
    (await d).release();
  });

  it("a parked holder lets the next in, and waits for a slot to come back", async () => {
    const s = new Slots(1);
    const a = await s.take();
    const blob = deferred();
    let back = false;
    const parked = a.park(blob.promise).then(() => (back = true));
    const b = await s.take(); // a's slot, while a waits
    blob.resolve();
    await tick();
    expect(back).toBe(false); // b holds the only slot
    b.release();
    await parked;
    expect(back).toBe(true);
    // a holds it again: a third must wait until a releases.
    let third = false;
    const c = s.take().then((x) => ((third = true), x));
    await tick();
    expect(third).toBe(false);
    a.release();
    (await c).release();
    expect(third).toBe(true);
  });

  it("overlapping parks give the slot back once and take one back once", async () => {
    const s = new Slots(2);
    const a = await s.take();
    const x = deferred();
    const y = deferred();
    const px = a.park(x.promise);
    const py = a.park(y.promise);
    // Both slots free while a is parked twice.
    const b = await s.take();
    const c = await s.take();
    b.release();
    c.release();
    x.resolve();
    await px;
    y.resolve();
    await py;
    a.release();
    // Nothing leaked: two holders fit again, a third waits.
    const d = await s.take();
    const e = await s.take();
    let third = false;
    void s.take().then((z) => ((third = true), z.release()));
    await tick();
    expect(third).toBe(false);
    d.release();
    e.release();
    await tick();
    expect(third).toBe(true);
  });

  it("an abort rejects the waits with RKT_ABORTED", async () => {
    const ac = new AbortController();
    const s = new Slots(1, ac.signal);
    const a = await s.take();
    const waiting = s.take();
    ac.abort();
    await expect(waiting).rejects.toMatchObject({ code: ErrorCode.Aborted });
    await expect(s.take()).rejects.toMatchObject({ code: ErrorCode.Aborted });
    a.release();
  });
});
