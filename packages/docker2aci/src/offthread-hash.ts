// A hash computed on a worker thread, for streams whose main thread has other work per byte (a
// tar being rewritten, a blob being written): the bytes are copied into a ring of shared memory
// and hashed by the worker while the main thread goes on. Copying costs a tenth of hashing.
// The worker's source is inline so that bundling the CLI into one file keeps it.
import { Worker } from "node:worker_threads";
import { ErrorCode, RktError } from "@rkt/oci";

/** A hash fed on this thread and computed on another. */
export interface OffThreadHash {
  /** Copies `chunk` to the worker; blocks only while the worker is a whole ring behind. */
  update(chunk: Uint8Array): void;
  /** The hex digest of everything given; the worker exits. */
  digest(): Promise<string>;
  /** Stops the worker (the hash is abandoned). */
  abort(): void;
  /** Bytes given so far. */
  readonly bytes: number;
}

// Control words: [0] bytes written into the ring, [1] bytes hashed, [2] 1 once input ended.
// One job per message; the worker then waits for the next, so a process hashing several blobs in
// turn keeps one thread.
const workerSource = `
const { parentPort, workerData } = require("node:worker_threads");
const { createHash } = require("node:crypto");
const ring = new Uint8Array(workerData.ring);
const ctl = new BigInt64Array(workerData.ctl);
const size = BigInt(ring.length);
parentPort.on("message", (algorithm) => {
  let h;
  try {
    h = createHash(algorithm);
  } catch (e) {
    parentPort.postMessage({ error: String(e && e.message) });
    return;
  }
  let done = 0n;
  for (;;) {
    const written = Atomics.load(ctl, 0);
    if (written === done) {
      if (Atomics.load(ctl, 2) === 1n && Atomics.load(ctl, 0) === done) break;
      Atomics.wait(ctl, 0, written, 1000);
      continue;
    }
    while (done < written) {
      const start = Number(done % size);
      const n = Math.min(Number(written - done), ring.length - start);
      h.update(ring.subarray(start, start + n));
      done += BigInt(n);
    }
    Atomics.store(ctl, 1, done);
    Atomics.notify(ctl, 1);
  }
  parentPort.postMessage({ hex: h.digest("hex") });
});
`;

/** A worker that makes no progress for this long is taken for dead. */
const stallMs = 30_000;
const ringSize = 4 << 20;

interface HashThread {
  readonly worker: Worker;
  readonly ring: Uint8Array;
  readonly ctl: BigInt64Array;
}

const idle: HashThread[] = [];

function startThread(): HashThread {
  const ringBuffer = new SharedArrayBuffer(ringSize);
  const ctlBuffer = new SharedArrayBuffer(3 * 8);
  const worker = new Worker(workerSource, {
    eval: true,
    workerData: { ring: ringBuffer, ctl: ctlBuffer },
  });
  worker.unref();
  return { worker, ring: new Uint8Array(ringBuffer), ctl: new BigInt64Array(ctlBuffer) };
}

/**
 * Starts hashing with `algorithm` (sha256, sha512) on a worker thread, reusing an idle one.
 * RKT_INTERNAL from update() when the worker stopped making progress.
 */
export function createOffThreadHash(algorithm: string): OffThreadHash {
  const t = idle.pop() ?? startThread();
  const { worker, ring, ctl } = t;
  ctl.fill(0n);
  let settled = false;
  const result = new Promise<string>((resolve, reject) => {
    const onMessage = (m: { hex?: string; error?: string }): void => {
      cleanup();
      if (m.hex !== undefined) {
        idle.push(t);
        resolve(m.hex);
      } else {
        idle.push(t);
        reject(new RktError(ErrorCode.Internal, `hash ${algorithm}: ${m.error ?? "failed"}`));
      }
    };
    const onExit = (code: number): void => {
      cleanup();
      reject(new RktError(ErrorCode.Internal, `hash worker exited (${code}) before the digest`));
    };
    const cleanup = (): void => {
      settled = true;
      worker.off("message", onMessage);
      worker.off("exit", onExit);
      worker.off("error", onExit);
    };
    worker.on("message", onMessage);
    worker.once("exit", onExit);
    worker.once("error", onExit);
  });
  result.catch(() => undefined); // reported by digest()
  worker.postMessage(algorithm);
  const size = BigInt(ringSize);
  let written = 0n;
  return {
    update(chunk) {
      let off = 0;
      while (off < chunk.length) {
        let hashed = Atomics.load(ctl, 1);
        const since = Date.now();
        while (written - hashed === size) {
          if (settled || Date.now() - since > stallMs) {
            throw new RktError(ErrorCode.Internal, `hash ${algorithm}: the worker stopped`);
          }
          Atomics.wait(ctl, 1, hashed, 100);
          hashed = Atomics.load(ctl, 1);
        }
        const start = Number(written % size);
        const n = Math.min(Number(size - (written - hashed)), chunk.length - off, ringSize - start);
        ring.set(chunk.subarray(off, off + n), start);
        off += n;
        written += BigInt(n);
        Atomics.store(ctl, 0, written);
        Atomics.notify(ctl, 0);
      }
    },
    digest() {
      Atomics.store(ctl, 2, 1n);
      Atomics.notify(ctl, 0);
      return result;
    },
    abort() {
      if (!settled) void worker.terminate();
    },
    get bytes() {
      return Number(written);
    },
  };
}
