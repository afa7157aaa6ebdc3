// A seeded pseudo-random generator, so a chaos run that fails can be replayed with its seed.

/** A generator of floats in [0, 1) from a 32-bit seed (mulberry32). Deterministic. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The seed of a chaos run: `RKT_CHAOS_SEED` when set (to replay a run), else a fresh one. Print
 * it with the run's figures.
 */
export function chaosSeed(env: NodeJS.ProcessEnv = process.env): number {
  const given = env["RKT_CHAOS_SEED"];
  if (given !== undefined && given !== "") {
    const n = Number(given);
    if (Number.isInteger(n) && n >= 0) return n >>> 0;
  }
  return Math.floor(Math.random() * 2 ** 32);
}
