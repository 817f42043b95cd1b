/**
 * A seeded pseudo-random generator for the tests and scripts that send
 * random bytes (the abuse suite's garbage, the soak's): the same seed gives
 * the same stream, so a failure can be replayed from the seed it reports.
 */

/** mulberry32: a tiny seeded PRNG; each call of the function it returns gives a number in [0, 1). */
export const mulberry32 = (seed: number): (() => number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
