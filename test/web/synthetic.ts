// CIFAR-100-format bytes made up deterministically (an LCG), for tests that
// need the binary format but not the real images: record i has coarse label
// i mod 20 and fine label i mod 100.
export const syntheticCifar = (records: number, seed = 1): Uint8Array => {
  const out = new Uint8Array(records * 3074);
  let s = seed >>> 0;
  for (let i = 0; i < records; i++) {
    const o = i * 3074;
    out[o] = i % 20;
    out[o + 1] = i % 100;
    for (let p = 2; p < 3074; p++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      out[o + p] = s >>> 24;
    }
  }
  return out;
};
