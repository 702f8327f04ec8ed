/**
 * The immutable Tensor.
 *
 * Immutability: a tensor's values live in a typed array held in an ES private
 * field. Nothing in the public API hands that array out: `toTypedArray()` and
 * `toArray()` return copies, and every constructor copies what it is given.
 * Kernels inside the library read the array through `internal.dataOf`, which the
 * package's `exports` map does not expose, and only ever write to arrays they have
 * just allocated for a new tensor.
 */
import * as E from 'fp-ts/lib/Either.js';
import { allocFloat32, allocFloat64 } from './pool.js';
import { makeShape, ShapeError, showShape, sizeOf, stridesOf, type Shape } from './shape.js';

/** Element type. float32 for training, float64 for references and gradient checks. */
export type DType = 'float32' | 'float64';
/** The typed array behind a tensor. */
export type Data = Float32Array | Float64Array;
/** What `toArray` returns and `tensor` accepts: numbers nested to the tensor's rank. */
export type NestedArray = number | readonly NestedArray[];

/**
 * The tape hook a traced tensor carries. Defined here (not in autodiff) so that
 * core depends on no other layer; `src/autodiff/tape.ts` implements it.
 */
export interface Trace {
  readonly tape: TapeLike;
  readonly id: number;
}

/** What core needs from a tape: a way to record one primitive application. */
export interface TapeLike {
  readonly level: number;
  record(
    prim: string,
    inputs: readonly Tensor[],
    output: Tensor,
    params: unknown,
  ): Tensor;
}

/**
 * An array for a new tensor's values (large ones on recycled memory: see
 * pool.ts). Zeroed, unless `zeroed` is false: then its contents are arbitrary,
 * for kernels that write every element.
 */
export const allocData = (dtype: DType, n: number, zeroed = true): Data =>
  dtype === 'float32' ? allocFloat32(n, zeroed) : allocFloat64(n, zeroed);

interface Internals {
  dataOf(t: Tensor): Data;
  wrap(data: Data, shape: Shape, trace?: Trace): Tensor;
}
// Assigned by Tensor's static block; declared first so the block can reach it.
let internalImpl!: Internals;

/** An immutable n-dimensional array of float32 or float64 values. */
export class Tensor {
  /** Length of each axis, outermost first (frozen). */
  readonly shape: Shape;
  readonly dtype: DType;
  /** Number of elements. */
  readonly size: number;
  /** Set only on tensors recorded by a tape inside `valueAndGrad` and friends. */
  readonly trace: Trace | undefined;
  readonly #data: Data;

  private constructor(data: Data, shape: Shape, trace: Trace | undefined) {
    this.#data = data;
    this.shape = shape;
    this.dtype = data instanceof Float32Array ? 'float32' : 'float64';
    this.size = data.length;
    this.trace = trace;
  }

  static {
    internalImpl = {
      dataOf: (t) => t.#data,
      wrap: (data, shape, trace) => new Tensor(data, shape, trace),
    };
  }

  get rank(): number {
    return this.shape.length;
  }

  /** A copy of the values as a flat typed array (row-major). */
  toTypedArray(): Data {
    return this.#data.slice();
  }

  /** A copy of the values as nested JavaScript arrays (a number for a scalar). */
  toArray(): NestedArray {
    const d = this.#data;
    const shape = this.shape;
    if (shape.length === 0) return d[0]!;
    const strides = stridesOf(shape);
    const build = (axis: number, offset: number): NestedArray[] => {
      const n = shape[axis]!;
      const out: NestedArray[] = new Array(n);
      for (let i = 0; i < n; i++) {
        const o = offset + i * strides[axis]!;
        out[i] = axis === shape.length - 1 ? d[o]! : build(axis + 1, o);
      }
      return out;
    };
    return build(0, 0);
  }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) {
      throw new ShapeError(`item(): tensor of shape ${showShape(this.shape)} has ${this.size} elements, not 1`);
    }
    return this.#data[0]!;
  }

  /** The value at a multi-index, e.g. `t.get(2, 5)`. */
  get(...index: number[]): number {
    if (index.length !== this.shape.length) {
      throw new ShapeError(`get(): ${index.length} indices for a tensor of shape ${showShape(this.shape)}`);
    }
    const strides = stridesOf(this.shape);
    let o = 0;
    index.forEach((ix, ax) => {
      if (!Number.isInteger(ix) || ix < 0 || ix >= this.shape[ax]!) {
        throw new ShapeError(`get(): index ${ix} out of range for axis ${ax} of shape ${showShape(this.shape)}`);
      }
      o += ix * strides[ax]!;
    });
    return this.#data[o]!;
  }

  toString(): string {
    const preview = Array.from(this.#data.subarray(0, 8), (v) => v.toPrecision(4)).join(', ');
    return `Tensor(${this.dtype} ${showShape(this.shape)} [${preview}${this.size > 8 ? ', …' : ''}])`;
  }
}

/**
 * Library-internal access to tensor storage. Not exported from the package entry.
 * Rule: read-only for arrays you did not allocate yourself.
 */
export const internal: Internals = {
  dataOf: (t) => internalImpl.dataOf(t),
  wrap: (data, shape, trace) => internalImpl.wrap(data, shape, trace),
};

/** The same values without the tape hook (a constant as far as gradients go). */
export const untraced = (t: Tensor): Tensor =>
  t.trace === undefined ? t : internal.wrap(internal.dataOf(t), t.shape);

// ---------------------------------------------------------------------------
// Constructors. Those taking user data return Either; the rest cannot fail on
// valid shapes and throw ShapeError on invalid ones.
// ---------------------------------------------------------------------------

const inferShape = (x: NestedArray): E.Either<ShapeError, number[]> => {
  if (typeof x === 'number') return E.right([]);
  if (x.length === 0) return E.right([0]);
  const first = inferShape(x[0]!);
  if (E.isLeft(first)) return first;
  for (let i = 1; i < x.length; i++) {
    const s = inferShape(x[i]!);
    if (E.isLeft(s)) return s;
    if (s.right.join() !== first.right.join()) {
      return E.left(new ShapeError(
        `tensor(): ragged nested array: element 0 has shape ${showShape(first.right)} but element ${i} has shape ${showShape(s.right)}`,
      ));
    }
  }
  return E.right([x.length, ...first.right]);
};

/**
 * A tensor from nested arrays: `tensor([[1, 2], [3, 4]])`. Returns `Left` on a
 * ragged array or a non-number element.
 */
export const tensor = (values: NestedArray, dtype: DType = 'float32'): E.Either<ShapeError, Tensor> => {
  const shape = inferShape(values);
  if (E.isLeft(shape)) return shape;
  const flat = [values].flat(Infinity as 1) as unknown[];
  for (const v of flat) {
    if (typeof v !== 'number') return E.left(new ShapeError(`tensor(): expected numbers, found ${typeof v}`));
  }
  const data = allocData(dtype, flat.length);
  data.set(flat as number[]);
  return E.right(internal.wrap(data, makeShape(shape.right)));
};

/** A tensor from a flat array (copied) and a shape. `Left` if the sizes differ. */
export const fromArray = (
  values: ArrayLike<number>,
  shape: readonly number[],
  dtype: DType = 'float32',
): E.Either<ShapeError, Tensor> =>
  E.tryCatch(
    () => {
      const s = makeShape(shape);
      if (sizeOf(s) !== values.length) {
        throw new ShapeError(
          `fromArray(): ${values.length} values cannot fill shape ${showShape(s)} (${sizeOf(s)} elements)`,
        );
      }
      const data = allocData(dtype, values.length);
      data.set(values);
      return internal.wrap(data, s);
    },
    (e) => (e instanceof ShapeError ? e : new ShapeError(String(e))),
  );

/** A tensor of one value repeated. */
export const full = (shape: readonly number[], value: number, dtype: DType = 'float32'): Tensor => {
  const s = makeShape(shape);
  const data = allocData(dtype, sizeOf(s));
  data.fill(value);
  return internal.wrap(data, s);
};

export const zeros = (shape: readonly number[], dtype: DType = 'float32'): Tensor => full(shape, 0, dtype);
export const ones = (shape: readonly number[], dtype: DType = 'float32'): Tensor => full(shape, 1, dtype);
/** A rank-0 tensor. */
export const scalar = (value: number, dtype: DType = 'float32'): Tensor => full([], value, dtype);

/** The same values in another dtype (a copy; rounding to float32 where asked). */
export const cast = (t: Tensor, dtype: DType): Tensor => {
  if (t.dtype === dtype) return untraced(t);
  const data = allocData(dtype, t.size);
  data.set(internal.dataOf(t));
  return internal.wrap(data, t.shape);
};
