/**
 * Data augmentation for image rows (channel-major [C, H, W], as CIFAR's are):
 * random crops of zero-padded images and horizontal flips, drawn from a key, so
 * `fit` derives one key per epoch and batch from the run's seed and a run (and a
 * resumed run) sees exactly the same images.
 *
 * The padding is 0 in the normalized values the set holds: the channel's mean
 * under 'per-dataset' and 'per-image' normalization (torchvision pads the raw
 * image with black, then normalizes).
 */
import type { Key } from '../core/index.js';

/** Random crops of zero-padded images and horizontal flips, drawn per epoch and batch from the run's key. */
export interface AugmentOptions {
  /** Pad each side by this many pixels and crop back to the original size at a random offset (0: no crops). */
  readonly crop?: number;
  /** Mirror each image left–right with probability 1/2. */
  readonly flip?: boolean;
}

/** The draws for one image: crop offsets in [0, 2·crop] and whether to flip. */
export interface ImageDraw {
  readonly dy: number;
  readonly dx: number;
  readonly flip: boolean;
}

/** One draw per image of a batch of `n`, from `key`. */
export const drawAugmentations = (key: Key, n: number, opts: AugmentOptions): ImageDraw[] => {
  const crop = opts.crop ?? 0;
  // float64 draws on the host: integers from them do not depend on float32 rounding.
  const u = key.uniform([n * 3], 0, 1, 'float64', 'reference').toTypedArray();
  return Array.from({ length: n }, (_, i) => ({
    dy: Math.floor(u[3 * i]! * (2 * crop + 1)),
    dx: Math.floor(u[3 * i + 1]! * (2 * crop + 1)),
    flip: opts.flip === true && u[3 * i + 2]! < 0.5,
  }));
};

/**
 * The augmented rows: out[r, c, i, j] = x[r, c, i + dy − crop, j' + dx − crop]
 * with j' = W − 1 − j when flipped, else j; 0 outside the image.
 */
export const augmentRows = (x: ArrayLike<number>, image: readonly [number, number, number], crop: number, draws: readonly ImageDraw[]): Float32Array => {
  const [C, H, W] = image;
  const size = C * H * W;
  const out = new Float32Array(draws.length * size);
  draws.forEach(({ dy, dx, flip }, r) => {
    const base = r * size;
    for (let c = 0; c < C; c++) {
      for (let i = 0; i < H; i++) {
        const si = i + dy - crop;
        if (si < 0 || si >= H) continue;
        const src = base + (c * H + si) * W,
          dst = base + (c * H + i) * W;
        for (let j = 0; j < W; j++) {
          const sj = (flip ? W - 1 - j : j) + dx - crop;
          if (sj >= 0 && sj < W) out[dst + j] = x[src + sj]!;
        }
      }
    }
  });
  return out;
};
