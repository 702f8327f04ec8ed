/**
 * From raw CIFAR bytes to float32 design matrices: z-scoring (per image and
 * channel, as the report does, or per dataset channel), the seeded
 * train/validation split and minibatches.
 */
import { defaultBackend, isHostBackend, type Key, makeShape, resolveBackend, type Backend, type BackendLike, type Tensor } from '../core/index.js';
import { internal, Storage } from '../core/internal.js';
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
 * [idx.length, features], with labels `y`. By default a CIFAR set holds its
 * normalized float32 matrix in a backend's memory, so that a batch of
 * consecutive rows is a view its kernels read in place; with
 * `materialize: false` it normalizes rows as they are gathered from the file's
 * bytes (a quarter of the memory). `denseSet` wraps a ready matrix.
 */
export interface LabeledSet {
  readonly n: number;
  readonly features: number;
  readonly classes: number;
  readonly y: Uint8Array;
  /** Rows `idx` as a tensor on `backend` (default: where the set's matrix lives, else the default backend). */
  gather(idx: ArrayLike<number>, backend?: BackendLike): Tensor;
  /** Releases the set's matrix now (it is also released once the set is garbage). Gathered batches stay valid. */
  dispose(): void;
}

/** A float32 array of n elements in `be`'s own memory when it keeps tensors on the host, else plain; filled by `fill`, then a tensor. */
const filledOn = (be: Backend, n: number, shape: readonly number[], fill: (out: Float32Array) => void): Tensor => {
  const out = (isHostBackend(be) ? be.alloc('float32', n, false) : new Float32Array(n)) as Float32Array;
  fill(out);
  return isHostBackend(be) ? internal.wrap(new Storage(be, out), makeShape(shape), 'float32') : internal.fromHost(out, makeShape(shape), be);
};

/**
 * A set over a row-major float32 matrix [rows, features]. On a backend that
 * keeps tensors on the host (reference, cpu) the matrix lives in its memory, and
 * a run of consecutive rows gathered there is a view, not a copy, where the
 * backend offers views its kernels read in place. For other backends (gpujs) the
 * matrix stays on the host and each batch is uploaded: a batch is the one
 * transfer a training step needs. An array passed in is kept, not copied, on
 * the host path: do not change it afterwards.
 */
export const denseSet = (x: Tensor | Float32Array, y: Uint8Array, features: number, classes: number, backend?: BackendLike): LabeledSet => {
  const size = x instanceof Float32Array ? x.length : x.size;
  if (size !== y.length * features) throw new RangeError(`denseSet: ${size} values are not ${y.length} rows of ${features} features`);
  const home = backend !== undefined ? resolveBackend(backend) : x instanceof Float32Array ? defaultBackend() : x.backend;
  let matrix: Tensor | undefined, rows: Float32Array | undefined;
  if (isHostBackend(home)) {
    matrix =
      x instanceof Float32Array || x.backend !== home
        ? internal.fromHost(x instanceof Float32Array ? x : (x.toTypedArray() as Float32Array), makeShape([y.length, features]), home)
        : x;
    matrix.keep(); // the set owns it: no tidy around its creation may free it
  } else {
    rows = x instanceof Float32Array ? x : (x.toTypedArray() as Float32Array);
  }
  return {
    n: y.length,
    features,
    classes,
    y,
    gather: (idx, target) => {
      const be = target === undefined ? home : resolveBackend(target);
      const start = idx[0] ?? 0;
      let consecutive = true;
      for (let i = 1; i < idx.length && consecutive; i++) consecutive = idx[i] === start + i;
      if (matrix !== undefined && consecutive && be === matrix.backend) {
        const storage = internal.storageOf(matrix);
        const view = be.view?.(storage.buf, start * features, idx.length * features);
        if (view !== undefined) return internal.wrap(new Storage(be, view, storage), makeShape([idx.length, features]), 'float32');
      }
      const src = matrix !== undefined ? internal.dataOf(matrix) : rows;
      if (src === undefined) throw new Error('this data set was disposed');
      return filledOn(be, idx.length * features, [idx.length, features], (out) => {
        for (let r = 0; r < idx.length; r++) {
          const s0 = idx[r]! * features;
          out.set(src.subarray(s0, s0 + features), r * features);
        }
      });
    },
    dispose: () => {
      matrix?.dispose();
      rows = undefined;
    },
  };
};

/** Mean and population std of each channel over the given images, on the [0, 1] scale. */
export const channelStats = (split: CifarSplit, indices?: ArrayLike<number>): ChannelStats => {
  const sum = [0, 0, 0],
    sq = [0, 0, 0];
  const n = indices?.length ?? split.n;
  const b = split.bytes;
  const CP = CHANNEL_PIXELS; // a local: imported bindings may be getters under some loaders
  for (let r = 0; r < n; r++) {
    const o = pixelOffset(indices === undefined ? r : indices[r]!);
    for (let c = 0; c < 3; c++) {
      let s = 0,
        s2 = 0;
      const base = o + c * CP;
      for (let p = 0; p < CP; p++) {
        const v = b[base + p]!;
        s += v;
        s2 += v * v;
      }
      sum[c]! += s;
      sq[c]! += s2;
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
        let s = 0,
          s2 = 0;
        for (let p = 0; p < CP; p++) {
          const v = b[s0 + p]!;
          s += v;
          s2 += v * v;
        }
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
  const CP = CHANNEL_PIXELS,
    P = PIXELS;
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r]!;
    const src = pixelOffset(indices[row]!);
    for (let c = 0; c < 3; c++) {
      const mean = affine[row * 6 + 2 * c]!,
        scale = affine[row * 6 + 2 * c + 1]!;
      const s0 = src + c * CP,
        d0 = r * P + c * CP;
      for (let p = 0; p < CP; p++) out[d0 + p] = (b[s0 + p]! - mean) * scale;
    }
  }
};

/** Writes the normalized pixels of images `indices` as consecutive rows of `out` (Table 1, tests). */
export const normalizeInto = (split: CifarSplit, indices: ArrayLike<number>, how: Normalization, out: Float32Array, stats?: ChannelStats): void =>
  writeRows(
    split,
    indices,
    channelAffines(split, indices, how, stats),
    Int32Array.from({ length: indices.length }, (_, i) => i),
    out,
  );

/**
 * The chosen images as a labelled set. By default the normalized float32 matrix
 * is built once, in the memory of `backend` (default: the default backend): a
 * batch is then a view or a memcpy, and training reads each row every epoch;
 * `materialize: false` normalizes rows as they are gathered instead, holding
 * only the file's bytes (a quarter of the memory).
 */
export const cifarSet = (
  split: CifarSplit,
  indices: ArrayLike<number>,
  labels: LabelKind,
  how: Normalization,
  stats?: ChannelStats,
  opts: { readonly materialize?: boolean; readonly backend?: BackendLike } = {},
): LabeledSet => {
  const affine = channelAffines(split, indices, how, stats);
  const all = labelsOf(split, labels);
  const y = new Uint8Array(indices.length);
  for (let i = 0; i < indices.length; i++) y[i] = all[indices[i]!]!;
  const home = opts.backend === undefined ? defaultBackend() : resolveBackend(opts.backend);
  if (opts.materialize ?? true) {
    const all = Int32Array.from({ length: indices.length }, (_, i) => i);
    // Written straight into the backend's memory where it keeps tensors on the host; else kept on the host (see denseSet).
    const x = isHostBackend(home)
      ? filledOn(home, indices.length * PIXELS, [indices.length, PIXELS], (out) => writeRows(split, indices, affine, all, out))
      : (() => {
          const out = new Float32Array(indices.length * PIXELS);
          writeRows(split, indices, affine, all, out);
          return out;
        })();
    return denseSet(x, y, PIXELS, classCount(labels), home);
  }
  return {
    n: indices.length,
    features: PIXELS,
    classes: classCount(labels),
    y,
    gather: (rows, target) =>
      filledOn(target === undefined ? home : resolveBackend(target), rows.length * PIXELS, [rows.length, PIXELS], (out) =>
        writeRows(split, indices, affine, rows, out),
      ),
    dispose: () => {},
  };
};

/** How `trainValSplit` splits: the training share, and optionally the labels to stratify by. */
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
  for (const i of perm) {
    const c = labels[i]!;
    (byClass.get(c) ?? byClass.set(c, []).get(c)!).push(i);
  }
  const train: number[] = [],
    val: number[] = [];
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
