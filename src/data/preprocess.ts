/**
 * From raw CIFAR bytes to float32 design matrices: z-scoring (per image and
 * channel, as the report does, or per dataset channel), the seeded
 * train/validation split and minibatches.
 */
import { Key, makeShape, type Tensor } from '../core/index.js';
import { allocData, internal } from '../core/tensor.js';
import { outsideKernelMemory } from '../core/pool.js';
import { CHANNEL_PIXELS, classCount, labelsOf, PIXELS, pixelOffset, type CifarSplit, type LabelKind } from './cifar.js';

/**
 * 'per-image': each channel of each image to mean 0, std 1 (the report's choice).
 * 'per-dataset': each channel with the training set's mean and std.
 * 'unit': pixels scaled to [0, 1], nothing else.
 */
export type Normalization = 'per-image' | 'per-dataset' | 'unit';

/** Per-channel statistics on the [0, 1] scale. */
export interface ChannelStats {
  readonly mean: readonly [number, number, number];
  readonly std: readonly [number, number, number];
}

/**
 * A labelled set of rows: `gather(idx)` gives rows idx as a float32 tensor
 * [idx.length, features], with labels `y`. CIFAR sets normalize on the fly from
 * the file's bytes (1 byte read per value instead of 4, and no 600 MB float32
 * copy of the training set to fault in); `denseSet` wraps a ready matrix.
 */
export interface LabeledSet {
  readonly n: number;
  readonly features: number;
  readonly classes: number;
  readonly y: Uint8Array;
  gather(idx: ArrayLike<number>): Tensor;
}

/** Keeps a matrix alive while a view of its rows is: a recycled matrix must not change a batch. */
const viewParents = new WeakMap<Float32Array, Float32Array>();

/**
 * A set over a row-major float32 matrix already in memory. The matrix is never
 * written again, so a run of consecutive rows is handed out as a view, not a
 * copy, unless the backend keeps tensors in memory of its own (the cpu backend)
 * and the matrix is not there: then one copy in lets every product read the
 * batch in place.
 */
export const denseSet = (x: Float32Array, y: Uint8Array, features: number, classes: number): LabeledSet => {
  if (x.length !== y.length * features) {
    throw new RangeError(`denseSet: ${x.length} values are not ${y.length} rows of ${features} features`);
  }
  return {
    n: y.length, features, classes, y,
    gather: (idx) => {
      const start = idx[0] ?? 0;
      let consecutive = true;
      for (let i = 1; i < idx.length && consecutive; i++) consecutive = idx[i] === start + i;
      if (!consecutive || outsideKernelMemory(x)) return gatherRows(x, features, idx);
      const rows = x.subarray(start * features, (start + idx.length) * features);
      viewParents.set(rows, x);
      return fromArrayUnchecked(rows, [idx.length, features]);
    },
  };
};

/** Mean and population std of each channel over the given images, on the [0, 1] scale. */
export const channelStats = (split: CifarSplit, indices?: ArrayLike<number>): ChannelStats => {
  const sum = [0, 0, 0], sq = [0, 0, 0];
  const n = indices?.length ?? split.n;
  const b = split.bytes;
  const CP = CHANNEL_PIXELS; // a local: imported bindings may be getters under some loaders
  for (let r = 0; r < n; r++) {
    const o = pixelOffset(indices === undefined ? r : indices[r]!);
    for (let c = 0; c < 3; c++) {
      let s = 0, s2 = 0;
      const base = o + c * CP;
      for (let p = 0; p < CP; p++) { const v = b[base + p]!; s += v; s2 += v * v; }
      sum[c]! += s; sq[c]! += s2;
    }
  }
  const count = n * CP;
  const mean = sum.map((s) => s / count / 255);
  const std = sq.map((s2, c) => Math.sqrt(Math.max(0, s2 / count / 65025 - mean[c]! ** 2)));
  return { mean: mean as unknown as ChannelStats['mean'], std: std as unknown as ChannelStats['std'] };
};

/**
 * The affine map (v − mean) · scale of each channel of each chosen image.
 * Per-image z-scoring uses the population std (ddof 0); a constant channel
 * (std 0) gets scale 0, so it becomes zeros instead of NaN.
 */
const channelAffines = (split: CifarSplit, indices: ArrayLike<number>, how: Normalization, stats?: ChannelStats): Float64Array => {
  if (how === 'per-dataset' && stats === undefined) throw new Error("'per-dataset' normalization needs the training set's channel stats");
  const b = split.bytes;
  const CP = CHANNEL_PIXELS; // a local: imported bindings may be getters under some loaders
  const out = new Float64Array(indices.length * 6);
  for (let r = 0; r < indices.length; r++) {
    const src = pixelOffset(indices[r]!);
    for (let c = 0; c < 3; c++) {
      let mean: number, scale: number;
      if (how === 'per-image') {
        const s0 = src + c * CP;
        let s = 0, s2 = 0;
        for (let p = 0; p < CP; p++) { const v = b[s0 + p]!; s += v; s2 += v * v; }
        mean = s / CP;
        const variance = Math.max(0, s2 / CP - mean * mean);
        scale = variance > 0 ? 1 / Math.sqrt(variance) : 0;
      } else if (how === 'per-dataset') {
        mean = stats!.mean[c]! * 255;
        scale = 1 / (stats!.std[c]! * 255);
      } else {
        mean = 0;
        scale = 1 / 255;
      }
      out[r * 6 + 2 * c] = mean;
      out[r * 6 + 2 * c + 1] = scale;
    }
  }
  return out;
};

/** Writes images `rows` (positions in `indices`) normalized into consecutive rows of `out`. */
const writeRows = (split: CifarSplit, indices: ArrayLike<number>, affine: Float64Array, rows: ArrayLike<number>, out: Float32Array): void => {
  const b = split.bytes;
  const CP = CHANNEL_PIXELS, P = PIXELS;
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r]!;
    const src = pixelOffset(indices[row]!);
    for (let c = 0; c < 3; c++) {
      const mean = affine[row * 6 + 2 * c]!, scale = affine[row * 6 + 2 * c + 1]!;
      const s0 = src + c * CP, d0 = r * P + c * CP;
      for (let p = 0; p < CP; p++) out[d0 + p] = (b[s0 + p]! - mean) * scale;
    }
  }
};

/** Writes the normalized pixels of images `indices` as consecutive rows of `out` (Table 1, tests). */
export const normalizeInto = (split: CifarSplit, indices: ArrayLike<number>, how: Normalization, out: Float32Array, stats?: ChannelStats): void =>
  writeRows(split, indices, channelAffines(split, indices, how, stats), Int32Array.from({ length: indices.length }, (_, i) => i), out);

/**
 * The chosen images as a labelled set. By default the normalized float32 matrix
 * is built once (a batch is then a memcpy or a view: training reads each row
 * every epoch); `materialize: false` normalizes rows as they are gathered
 * instead, holding only the file's bytes (a quarter of the memory).
 */
export const cifarSet = (
  split: CifarSplit,
  indices: ArrayLike<number>,
  labels: LabelKind,
  how: Normalization,
  stats?: ChannelStats,
  opts: { readonly materialize?: boolean } = {},
): LabeledSet => {
  const affine = channelAffines(split, indices, how, stats);
  const all = labelsOf(split, labels);
  const y = new Uint8Array(indices.length);
  for (let i = 0; i < indices.length; i++) y[i] = all[indices[i]!]!;
  if (opts.materialize ?? true) {
    // In the backend's memory where it has some (the cpu backend): batches are then views its kernels read in place.
    const x = allocData('float32', indices.length * PIXELS, false) as Float32Array;
    writeRows(split, indices, affine, Int32Array.from({ length: indices.length }, (_, i) => i), x);
    return denseSet(x, y, PIXELS, classCount(labels));
  }
  return {
    n: indices.length,
    features: PIXELS,
    classes: classCount(labels),
    y,
    gather: (rows) => {
      const out = allocData('float32', rows.length * PIXELS, false) as Float32Array;
      writeRows(split, indices, affine, rows, out);
      return fromArrayUnchecked(out, [rows.length, PIXELS]);
    },
  };
};

export interface SplitOptions {
  /** Share of the images that go to training (default 0.8). */
  readonly trainFraction?: number;
  /** Split each class in the same proportion (needs labels). */
  readonly stratifyBy?: Uint8Array;
}

/**
 * A seeded shuffle of 0..n-1 cut into train and validation indices (the report:
 * first 80% train, last 20% validation). Deterministic for a key.
 */
export const trainValSplit = (n: number, key: Key, opts: SplitOptions = {}): { readonly train: Int32Array; readonly val: Int32Array } => {
  const f = opts.trainFraction ?? 0.8;
  if (!(f > 0 && f < 1)) throw new RangeError(`trainValSplit: trainFraction must be in (0, 1), got ${f}`);
  const perm = key.permutation(n);
  if (opts.stratifyBy === undefined) {
    const cut = Math.round(n * f);
    return { train: perm.slice(0, cut), val: perm.slice(cut) };
  }
  const labels = opts.stratifyBy;
  const byClass = new Map<number, number[]>();
  for (const i of perm) { const c = labels[i]!; (byClass.get(c) ?? byClass.set(c, []).get(c)!).push(i); }
  const train: number[] = [], val: number[] = [];
  for (const c of [...byClass.keys()].sort((a, b) => a - b)) {
    const members = byClass.get(c)!;
    const cut = Math.round(members.length * f);
    train.push(...members.slice(0, cut));
    val.push(...members.slice(cut));
  }
  return { train: Int32Array.from(train), val: Int32Array.from(val) };
};

/**
 * Minibatch index lists over n rows: a seeded shuffle when `key` is given
 * (a new order per epoch: derive the key from the epoch), else 0..n-1 in order.
 * The last partial batch is kept.
 */
export const batchIndices = (n: number, batchSize: number, key?: Key): Int32Array[] => {
  if (!(Number.isInteger(batchSize) && batchSize > 0)) throw new RangeError(`batchIndices: batch size must be a positive integer, got ${batchSize}`);
  const order = key === undefined ? Int32Array.from({ length: n }, (_, i) => i) : key.permutation(n);
  const out: Int32Array[] = [];
  for (let s = 0; s < n; s += batchSize) out.push(order.subarray(s, Math.min(n, s + batchSize)));
  return out;
};

/** Rows `idx` of a row-major matrix as a float32 tensor [idx.length, cols]. */
export const gatherRows = (x: Float32Array, cols: number, idx: ArrayLike<number>): Tensor => {
  const out = allocData('float32', idx.length * cols, false) as Float32Array;
  for (let r = 0; r < idx.length; r++) {
    const s = idx[r]! * cols;
    out.set(x.subarray(s, s + cols), r * cols);
  }
  return fromArrayUnchecked(out, [idx.length, cols]);
};

/** The labels at `idx`. */
export const gatherLabels = (y: Uint8Array, idx: ArrayLike<number>): Uint8Array => {
  const out = new Uint8Array(idx.length);
  for (let i = 0; i < idx.length; i++) out[i] = y[idx[i]!]!;
  return out;
};

/** Rows start..end of a set as a tensor, with their labels. */
export const sliceRows = (set: LabeledSet, start: number, end: number): { x: Tensor; y: Uint8Array } => ({
  x: set.gather(Int32Array.from({ length: end - start }, (_, i) => start + i)),
  y: set.y.subarray(start, end),
});

// The arrays are freshly allocated here and handed over: no second copy.
const fromArrayUnchecked = (data: Float32Array, shape: number[]): Tensor => internal.wrap(data, makeShape(shape));
