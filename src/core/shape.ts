/**
 * Shapes, broadcasting and the one error type that shape checks raise.
 *
 * Shapes are frozen arrays of non-negative integers. Broadcasting follows NumPy:
 * align trailing axes, and an axis of length 1 stretches to the other's length.
 */

/** A tensor's shape: one length per axis, outermost first. */
export type Shape = readonly number[];

/**
 * Raised (inside model code) or returned in a `Left` (at the public `checked`
 * boundary) when shapes do not fit. The message always names the shapes involved.
 */
export class ShapeError extends Error {
  override readonly name = 'ShapeError';
}

/** `[2,3]` → `"[2, 3]"`, for error messages. */
export const showShape = (s: Shape): string => `[${s.join(', ')}]`;

/** Number of elements of a shape (1 for a scalar `[]`). */
export const sizeOf = (s: Shape): number => {
  let n = 1;
  for (const d of s) n *= d;
  return n;
};

/** Validates a user-supplied shape and returns it frozen. */
export const makeShape = (s: readonly number[]): Shape => {
  if (!Array.isArray(s)) {
    throw new ShapeError(`invalid shape ${typeof s === 'string' ? JSON.stringify(s) : String(s)}: a shape is an array of non-negative integers, e.g. [2, 3]`);
  }
  for (const d of s) {
    if (!Number.isInteger(d) || d < 0) {
      throw new ShapeError(`invalid shape ${showShape(s)}: every length must be a non-negative integer`);
    }
  }
  return Object.freeze([...s]);
};

/** Whether two shapes are equal, axis by axis. */
export const sameShape = (a: Shape, b: Shape): boolean => a.length === b.length && a.every((d, i) => d === b[i]);

/** Row-major strides of a shape. */
export const stridesOf = (s: Shape): number[] => {
  const st = new Array<number>(s.length);
  let acc = 1;
  for (let i = s.length - 1; i >= 0; i--) {
    st[i] = acc;
    acc *= s[i]!;
  }
  return st;
};

/** The NumPy broadcast of two shapes, or a ShapeError naming both. */
export const broadcastShapes = (a: Shape, b: Shape, op: string): Shape => {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new ShapeError(
        `${op}: shapes ${showShape(a)} and ${showShape(b)} do not broadcast ` +
          `(axis ${i} from the right has lengths ${da} and ${db}; lengths must match or one must be 1)`,
      );
    }
    out[i] = da === 1 ? db : da;
  }
  return Object.freeze(out);
};

/** Normalizes an axis that may be negative (-1 = last) and checks its range. */
export const normalizeAxis = (axis: number, rank: number, op: string): number => {
  if (typeof axis !== 'number' || !Number.isInteger(axis)) {
    throw new ShapeError(`${op}: an axis must be an integer, got ${typeof axis === 'string' ? JSON.stringify(axis) : String(axis)}`);
  }
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) {
    throw new ShapeError(`${op}: axis ${axis} is out of range for a tensor of rank ${rank}`);
  }
  return a;
};

/**
 * For every element of `outShape` (row-major), the flat index of the element of
 * `inShape` that broadcasting reads. Used by the general broadcasting path.
 */
export const broadcastIndex = (inShape: Shape, outShape: Shape): Int32Array => {
  const size = sizeOf(outShape);
  const idx = new Int32Array(size);
  const rank = outShape.length;
  const offset = rank - inShape.length;
  const inStrides = stridesOf(inShape);
  // Effective stride per output axis: 0 where the input is stretched.
  const eff = new Array<number>(rank).fill(0);
  for (let i = 0; i < inShape.length; i++) eff[i + offset] = inShape[i] === 1 ? 0 : inStrides[i]!;
  const counter = new Array<number>(rank).fill(0);
  let pos = 0;
  for (let k = 0; k < size; k++) {
    idx[k] = pos;
    for (let ax = rank - 1; ax >= 0; ax--) {
      counter[ax]!++;
      pos += eff[ax]!;
      if (counter[ax]! < outShape[ax]!) break;
      pos -= eff[ax]! * outShape[ax]!;
      counter[ax] = 0;
    }
  }
  return idx;
};

/** The axes along which `from` was stretched to reach `to` (for reducing a gradient back). */
export const broadcastedAxes = (from: Shape, to: Shape): number[] => {
  const offset = to.length - from.length;
  const axes: number[] = [];
  for (let i = 0; i < to.length; i++) {
    const d = i < offset ? 1 : from[i - offset]!;
    if (d === 1 && to[i] !== 1) axes.push(i);
    else if (i < offset) axes.push(i);
  }
  return axes;
};
