/**
 * Threefry-2x32 with 20 rounds (Salmon, Moraes, Dror and Shaw, "Parallel random
 * numbers: as easy as 1, 2, 3", SC 2011; the Random123 library; the generator
 * behind `jax.random`): a keyed bijection of 64-bit blocks, so a random word is
 * a pure function of (key, counter) and needs no state. Checked against the
 * paper's known-answer vectors in test/core/random.test.ts.
 */

/** Skein's key-schedule parity constant. */
const PARITY = 0x1bd11bda;

/**
 * Encrypts the counter block (c0, c1) under the key (k0, k1) with 20 rounds and
 * writes the two output words (unsigned) to `out[at]`, `out[at + 1]`. Unrolled
 * by hand (five groups of four rounds, each followed by a key injection), about
 * three times as fast as the loop over Random123's rotation table.
 */
export const threefry2x32Into = (k0: number, k1: number, c0: number, c1: number, out: Uint32Array, at: number): void => {
  const ks0 = k0 | 0,
    ks1 = k1 | 0,
    ks2 = PARITY ^ ks0 ^ ks1;
  let x0 = (c0 + ks0) | 0,
    x1 = (c1 + ks1) | 0;
  // Rotations R_32x2: 13, 15, 26, 6 in even groups; 17, 29, 16, 24 in odd ones.
  x0 = (x0 + x1) | 0;
  x1 = ((x1 << 13) | (x1 >>> 19)) ^ x0;
  x0 = (x0 + x1) | 0;
  x1 = ((x1 << 15) | (x1 >>> 17)) ^ x0;
  x0 = (x0 + x1) | 0;
  x1 = ((x1 << 26) | (x1 >>> 6)) ^ x0;
  x0 = (x0 + x1) | 0;
  x1 = ((x1 << 6) | (x1 >>> 26)) ^ x0;
  x0 = (x0 + ks1) | 0;
  x1 = (x1 + ks2 + 1) | 0;
  x0 = (x0 + x1) | 0;
  x1 = ((x1 << 17) | (x1 >>> 15)) ^ x0;
  x0 = (x0 + x1) | 0;
  x1 = ((x1 << 29) | (x1 >>> 3)) ^ x0;
  x0 = (x0 + x1) | 0;
  x1 = ((x1 << 16) | (x1 >>> 16)) ^ x0;
  x0 = (x0 + x1) | 0;
  x1 = ((x1 << 24) | (x1 >>> 8)) ^ x0;
  x0 = (x0 + ks2) | 0;
  x1 = (x1 + ks0 + 2) | 0;
  x0 = (x0 + x1) | 0;
  x1 = ((x1 << 13) | (x1 >>> 19)) ^ x0;
  x0 = (x0 + x1) | 0;
  x1 = ((x1 << 15) | (x1 >>> 17)) ^ x0;
  x0 = (x0 + x1) | 0;
  x1 = ((x1 << 26) | (x1 >>> 6)) ^ x0;
  x0 = (x0 + x1) | 0;
  x1 = ((x1 << 6) | (x1 >>> 26)) ^ x0;
  x0 = (x0 + ks0) | 0;
  x1 = (x1 + ks1 + 3) | 0;
  x0 = (x0 + x1) | 0;
  x1 = ((x1 << 17) | (x1 >>> 15)) ^ x0;
  x0 = (x0 + x1) | 0;
  x1 = ((x1 << 29) | (x1 >>> 3)) ^ x0;
  x0 = (x0 + x1) | 0;
  x1 = ((x1 << 16) | (x1 >>> 16)) ^ x0;
  x0 = (x0 + x1) | 0;
  x1 = ((x1 << 24) | (x1 >>> 8)) ^ x0;
  x0 = (x0 + ks1) | 0;
  x1 = (x1 + ks2 + 4) | 0;
  x0 = (x0 + x1) | 0;
  x1 = ((x1 << 13) | (x1 >>> 19)) ^ x0;
  x0 = (x0 + x1) | 0;
  x1 = ((x1 << 15) | (x1 >>> 17)) ^ x0;
  x0 = (x0 + x1) | 0;
  x1 = ((x1 << 26) | (x1 >>> 6)) ^ x0;
  x0 = (x0 + x1) | 0;
  x1 = ((x1 << 6) | (x1 >>> 26)) ^ x0;
  x0 = (x0 + ks2) | 0;
  x1 = (x1 + ks0 + 5) | 0;
  out[at] = x0 >>> 0;
  out[at + 1] = x1 >>> 0;
};

/** Threefry-2x32-20 of one block: [out0, out1], unsigned 32-bit words. */
export const threefry2x32 = (key: readonly [number, number], counter: readonly [number, number]): [number, number] => {
  const out = new Uint32Array(2);
  threefry2x32Into(key[0], key[1], counter[0], counter[1], out, 0);
  return [out[0]!, out[1]!];
};
