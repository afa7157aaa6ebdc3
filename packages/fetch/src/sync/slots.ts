// A counting semaphore for the stages of a sync: how many images compare at once, how many move
// bytes at once. A holder may park (give its slot back while it only waits for something another
// holder is doing) and takes a slot again afterwards. Internal to the package.
import { ErrorCode, RktError } from "@rkt/oci";

/** One slot taken from {@link Slots}. */
export interface Slot {
  /** Gives the slot back for good; later calls do nothing. */
  release(): void;
  /**
   * Waits for `p` without the slot (others may run meanwhile), then takes a slot again before
   * returning what `p` gave. Parks may overlap: the slot is given back while any is pending and
   * taken again once none is.
   */
  park<T>(p: Promise<T>): Promise<T>;
}

export class Slots {
  private free: number;
  private readonly waiting: { wake(): void; fail(e: unknown): void }[] = [];
  private readonly signal: AbortSignal | undefined;

  /** `signal`: aborts every wait for a slot (one listener, however many wait). */
  constructor(size: number, signal?: AbortSignal) {
    this.free = Math.max(1, size);
    this.signal = signal;
    signal?.addEventListener(
      "abort",
      () => {
        for (const w of this.waiting.splice(0)) w.fail(aborted());
      },
      { once: true },
    );
  }

  /** A slot, when one is free (first come, first served); RKT_ABORTED once the signal fired. */
  async take(): Promise<Slot> {
    await this.acquire();
    let held = true;
    let parked = 0;
    let released = false;
    let regain: Promise<void> | undefined;
    // Brings `held` in line with what the holder wants now (parks and releases may interleave
    // with a pending re-acquire).
    const settle = async (): Promise<void> => {
      for (;;) {
        const want = !released && parked === 0;
        if (want && !held) {
          regain ??= this.acquire().then(
            () => {
              held = true;
              regain = undefined;
            },
            (e: unknown) => {
              regain = undefined;
              throw e;
            },
          );
          await regain;
          continue;
        }
        if (!want && held) {
          held = false;
          this.give();
        }
        return;
      }
    };
    return {
      release: () => {
        released = true;
        void settle();
      },
      park: async <T>(p: Promise<T>): Promise<T> => {
        parked++;
        await settle();
        try {
          return await p;
        } finally {
          parked--;
          await settle();
        }
      },
    };
  }

  private give(): void {
    this.free++;
    this.waiting.shift()?.wake();
  }

  private acquire(): Promise<void> {
    if (this.signal?.aborted === true) return Promise.reject(aborted());
    if (this.free > 0 && this.waiting.length === 0) {
      this.free--;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      this.waiting.push({
        wake: () => {
          this.free--;
          resolve();
        },
        fail: reject,
      });
    });
  }
}

const aborted = (): RktError => new RktError(ErrorCode.Aborted, "sync aborted");
