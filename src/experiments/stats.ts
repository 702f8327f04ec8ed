/** The report's Table 1: mean and std of each channel of one normalized image. */
import { Key } from '../core/index.js';
import { normalizeInto, PIXELS, type CifarSplit } from '../data/index.js';

export interface ChannelRow {
  readonly channel: 'Red' | 'Green' | 'Blue';
  readonly mean: number;
  readonly std: number;
}

/** Picks one training image with `seed` and reports its channels after per-image z-scoring. */
export const paperTable1 = (train: CifarSplit, seed = 0): { readonly image: number; readonly rows: readonly ChannelRow[] } => {
  const image = new Key(seed).fold('table1').permutation(train.n)[0]!;
  const out = new Float32Array(PIXELS);
  normalizeInto(train, [image], 'per-image', out);
  const rows = (['Red', 'Green', 'Blue'] as const).map((channel, c) => {
    let s = 0,
      s2 = 0;
    for (let p = 0; p < 1024; p++) {
      const v = out[c * 1024 + p]!;
      s += v;
      s2 += v * v;
    }
    const mean = s / 1024;
    return { channel, mean, std: Math.sqrt(Math.max(0, s2 / 1024 - mean * mean)) };
  });
  return { image, rows };
};
