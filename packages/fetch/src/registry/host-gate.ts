// A pause shared by every request to one host: when the host answers 429 (or 503 with
// Retry-After), no request of this process goes to it until the pause is over, whichever client
// or worker sends it. Without it, a sync's other workers keep hitting a registry that asked them
// to wait, and each collects its own 429 (skopeo's and regsync's users report exactly this).
// And the requests of one connection pool to one host, bounded by its connections: a request
// waits for its turn here, where the pause is checked again, rather than in the pool's queue,
// from which it would go out whatever the host asked meanwhile.

/** The pause of one host (`scheme://host:port`). */
export class HostGate {
  private until = 0;
  private readonly now: () => number;

  constructor(now: () => number = Date.now) {
    this.now = now;
  }

  /** Extends the pause to at least `ms` from now (a shorter request never shortens it). */
  pause(ms: number): void {
    this.until = Math.max(this.until, this.now() + Math.max(0, ms));
  }

  /** Milliseconds left of the pause (0: open). */
  remaining(): number {
    return Math.max(0, this.until - this.now());
  }

  /** Resolves when the pause is over (at once when there is none, or when `signal` fires). */
  async wait(signal?: AbortSignal): Promise<void> {
    for (let left = this.remaining(); left > 0 && signal?.aborted !== true; left = this.remaining()) {
      await sleep(left, signal);
    }
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Requests of one pool to one host in flight, at most `size` (its connections). A request takes
 * a turn when the host's gate is open and a turn is free, and gives it back when its response
 * body has ended or is destroyed.
 */
export class InFlight {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly size: number;

  constructor(size: number) {
    this.size = Math.max(1, size);
  }

  /**
   * Resolves with the function that gives the turn back (once; later calls do nothing). An
   * aborted `signal` ends the wait for the pause at once and a wait for a turn at the next free
   * one; the caller then finds the signal aborted.
   */
  async enter(gate: HostGate, signal?: AbortSignal): Promise<() => void> {
    for (;;) {
      await gate.wait(signal);
      if (this.active < this.size || signal?.aborted === true) {
        this.active++;
        let done = false;
        return () => {
          if (done) return;
          done = true;
          this.active--;
          this.waiting.shift()?.();
        };
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }
}

const gates = new Map<string, HostGate>();

/** The process's gate for `origin` (`https://registry.example:5000`), made on first use. */
export function hostGate(origin: string): HostGate {
  let g = gates.get(origin);
  if (g === undefined) gates.set(origin, (g = new HostGate()));
  return g;
}

/** The pause a throttling answer asks for: 429 (Retry-After, else `fallbackMs`), or 503 with Retry-After. */
export function throttlePause(
  status: number,
  retryAfterMs: number | undefined,
  fallbackMs: number,
): number | undefined {
  if (status === 429) return retryAfterMs ?? fallbackMs;
  if (status === 503 && retryAfterMs !== undefined) return retryAfterMs;
  return undefined;
}
