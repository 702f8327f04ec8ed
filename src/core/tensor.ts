/**
 * The immutable Tensor, and the lifetime of its memory.
 *
 * Immutability: a tensor's values live in a buffer of its backend, held in an
 * ES private field. Nothing in the public API hands that buffer out:
 * `toTypedArray()` and `toArray()` return copies, and every constructor copies
 * what it is given. Kernels inside the library read buffers through
 * `internal`, which the package's `exports` map does not expose, and only ever
 * write to buffers they have just allocated for a new tensor.
 *
 * Memory is freed deterministically, without the garbage collector: several
 * tensors may share one buffer (reshape, the tape's traced copies, data-set
 * views), so a buffer is reference-counted by the tensors using it and goes back
 * to its backend when the last one is disposed: by `dispose`, or by `tidy`,
 * which disposes every tensor made inside its function except those it returns
 * (tfjs's design). Code that never disposes anything still works: a
 * FinalizationRegistry frees a buffer once the collector has taken every tensor
 * using it, whenever that happens, as a safety net; the library never forces a
 * collection.
 */
import * as E from 'fp-ts/lib/Either.js';
import { defaultBackend, int32Limit, resolveBackend, storageDType, type Backend, type BackendLike } from './backend.js';
import { badDType, checkDType } from './dtypes.js';
import type { Data, DType, HostData } from './primitives.js';
import { formatTensor } from './format.js';
import { makeShape, ShapeError, showShape, sizeOf, stridesOf, type Shape } from './shape.js';

export type { Data, DType, HostData } from './primitives.js';
export { checkDType } from './dtypes.js';
/** What `toArray` returns and `tensor` accepts: numbers nested to the tensor's rank (a bool tensor's as 0 and 1). */
export type NestedArray = number | readonly NestedArray[];
/** What `tensor` accepts: numbers, or booleans (a bool tensor), nested to the tensor's rank. */
export type NestedInput = number | boolean | readonly NestedInput[];

/**
 * The hook a traced tensor carries: which transformation traced it (a reverse
 * tape, a forward-mode `jvp`, a `vmap`). Defined here (not in autodiff) so that
 * core depends on no other layer; src/autodiff implements it. A traced tensor
 * stands for a value of the transformation below it (`MainTrace.level` orders
 * them: a transformation started inside another has the higher level).
 */
export interface Trace {
  readonly main: MainTrace;
  /**
   * The tensors one level down that this traced tensor stands for (its value,
   * its tangent): `tidy` and `keep` keep them with it.
   */
  readonly parts: readonly Tensor[];
  /**
   * Whether the values can be read on the host: false inside `vmap`, where the
   * storage holds the whole batch and the tensor stands for one example.
   */
  readonly readable: boolean;
}

/** A running transformation, as core's `bind` sees it. */
export interface MainTrace {
  /** Nesting order: `bind` hands an op to the highest level among its inputs' traces. */
  readonly level: number;
  /** What it is, for messages: 'grad', 'jvp' or 'vmap'. */
  readonly kind: string;
  /** Applies primitive `prim` to inputs at least one of which this transformation traced. */
  process(prim: string, inputs: readonly Tensor[], params: unknown): Tensor;
  /**
   * Optional: a fused optimizer update (`momentumStep`, `adamStep`) on inputs
   * this transformation traced, computed by `run` one level down (jit records
   * it). Transformations without it see the update as untraced arithmetic.
   */
  fused?(name: string, inputs: readonly Tensor[], hyper: unknown, run: (values: readonly Tensor[]) => readonly Tensor[]): Tensor[];
}

/** What the safety net needs to free a buffer once its Storage is gone (never the Storage itself). */
interface Held {
  readonly backend: Backend;
  readonly buf: unknown;
  readonly parent: Storage | undefined;
}

/**
 * The safety net: frees the buffer of a Storage the collector took while tensors
 * using it were never disposed. Registered once per buffer, and only for
 * buffers whose memory the collector cannot reclaim by itself (kernel memory,
 * textures, pooled arrays: `Backend.needsRelease`). A finalizer must not throw:
 * an error here could only come from a backend already disposed, whose memory
 * is gone anyway.
 */
const finalizer = new FinalizationRegistry<Held>((h) => {
  try {
    if (h.parent !== undefined) h.parent.release();
    else h.backend.free(h.buf);
  } catch {
    /* see above */
  }
});

/**
 * A backend buffer and the number of live tensors using it. A view (a data
 * set's batch) holds its parent buffer instead of memory of its own.
 */
export class Storage {
  #refs = 0;
  #released = false;
  constructor(
    readonly backend: Backend,
    readonly buf: unknown,
    readonly parent?: Storage,
  ) {
    parent?.retain();
    if (parent !== undefined || (backend.needsRelease?.(buf) ?? true)) finalizer.register(this, { backend, buf, parent }, this);
  }

  retain(): void {
    this.#refs++;
  }

  /** One tensor fewer; the buffer goes back to its backend with the last. */
  release(): void {
    if (--this.#refs > 0 || this.#released) return;
    this.#released = true;
    finalizer.unregister(this);
    if (this.parent !== undefined) this.parent.release();
    else this.backend.free(this.buf);
  }
}

/**
 * What `jit` needs from random draws while it traces a function (see
 * `internal.traceDraws`): which keys derive from its key arguments, and how
 * to record a draw from one. Undefined when no trace runs.
 */
export interface DrawTrace {
  /** The jitted function, for messages. */
  readonly who: string;
  /** Each traced key's derivation from the call's key arguments. */
  readonly keys: WeakMap<object, (args: readonly object[]) => object>;
  /** Records a draw from a traced key: `make` redoes it from the call's key arguments; returns what stands for `value` in the trace. */
  record(what: string, make: (args: readonly object[]) => Tensor, value: Tensor): Tensor;
}
let drawTrace: DrawTrace | undefined;

/** Tensors made inside each `tidy` call in progress, innermost last. */
const scopes: Set<Tensor>[] = [];

interface Internals {
  storageOf(t: Tensor): Storage;
  wrap(storage: Storage, shape: Shape, dtype: DType, trace?: Trace): Tensor;
}
// Assigned by Tensor's static block; declared first so the block can reach it.
let internalImpl!: Internals;

const disposedError = (t: Tensor): Error =>
  new Error(
    `a tensor of shape ${showShape(t.shape)} was used after it was disposed (by dispose() or by the tidy() it was made in): ` +
      'return it from the tidy function, or keep() it, to use it afterwards',
  );

/** An immutable n-dimensional array of float32, float64, int32 or bool values (see `DType`), in the memory of one backend. */
export class Tensor {
  /** Length of each axis, outermost first (frozen). */
  readonly shape: Shape;
  readonly dtype: DType;
  /** Number of elements. */
  readonly size: number;
  /** Set only on tensors traced by a transformation (`valueAndGrad`, `jvp`, `vmap` and friends) while it runs. */
  readonly trace: Trace | undefined;
  readonly #storage: Storage;
  #disposed = false;
  #kept = false;

  private constructor(storage: Storage, shape: Shape, dtype: DType, trace: Trace | undefined) {
    this.#storage = storage;
    this.shape = shape;
    this.dtype = dtype;
    this.size = sizeOf(shape);
    this.trace = trace;
    storage.retain();
    scopes[scopes.length - 1]?.add(this);
  }

  static {
    internalImpl = {
      storageOf: (t) => {
        if (t.#disposed) throw disposedError(t);
        return t.#storage;
      },
      wrap: (storage, shape, dtype, trace) => new Tensor(storage, shape, dtype, trace),
    };
  }

  get rank(): number {
    return this.shape.length;
  }

  /** The backend whose memory holds this tensor; ops on it run there. */
  get backend(): Backend {
    return this.#storage.backend;
  }

  /** Whether `dispose` has released this tensor. */
  get isDisposed(): boolean {
    return this.#disposed;
  }

  /**
   * Releases this tensor's memory now (the buffer goes back to its backend once
   * no other tensor shares it). Using the tensor afterwards throws. Idempotent.
   */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#storage.release();
  }

  /** Exempts this tensor from the `tidy` scopes it was made in (it is still freed by `dispose`). */
  keep(): this {
    this.#kept = true;
    for (const p of this.trace?.parts ?? []) p.keep();
    return this;
  }

  /** Whether `keep` exempted this tensor from `tidy`. */
  get isKept(): boolean {
    return this.#kept;
  }

  /**
   * The values like numpy's repr, summarized past 1000 values: what
   * `console.log` and `util.inspect` print under Node (the hook is
   * `Symbol.for('nodejs.util.inspect.custom')`, so no import of node:util).
   */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    const tail = `, dtype=${this.dtype}, shape=${showShape(this.shape)}, backend=${this.#storage.backend.name}`;
    if (this.trace !== undefined && !this.trace.readable) return `Tensor(<one example inside vmap>${tail})`;
    return this.#disposed ? `Tensor(<disposed>${tail})` : formatTensor(hostData(this), this.shape, 'Tensor', tail, this.dtype);
  }

  /**
   * A copy of the values as a flat typed array (row-major): Float32Array,
   * Float64Array, Int32Array for int32, Uint8Array of 0 and 1 for bool.
   */
  toTypedArray(): HostData {
    return typedCopy(hostData(this), this.dtype);
  }

  /**
   * A copy of the values as a flat typed array, read without blocking: on the
   * webgpu backend the device finishes the work queued before it while this
   * thread goes on; elsewhere the same as `toTypedArray()`. In a browser, where
   * a GPU read cannot block, this is the way to read a webgpu tensor.
   */
  async data(): Promise<HostData> {
    if (this.trace !== undefined && !this.trace.readable) return hostData(this).slice(); // throws the vmap error
    const s = internalImpl.storageOf(this);
    if (s.backend.readAsync === undefined) return typedCopy(hostData(this), this.dtype);
    // readAsync returns a fresh copy (a download).
    const d = await s.backend.readAsync(s.buf, storageDType(s.backend, this.dtype), this.size);
    return this.dtype === 'int32' || this.dtype === 'bool' ? typedCopy(d, this.dtype) : d;
  }

  /** A copy of the values as nested JavaScript arrays (a number for a scalar). */
  toArray(): NestedArray {
    const d = hostData(this);
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
    return hostData(this)[0]!;
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
    return hostData(this)[o]!;
  }

  /** A one-line preview: dtype, shape, the first values, the backend. */
  toString(): string {
    if (this.#disposed) return `Tensor(${this.dtype} ${showShape(this.shape)}, disposed)`;
    if (this.trace !== undefined && !this.trace.readable)
      return `Tensor(${this.dtype} ${showShape(this.shape)}, ${this.trace.main.kind === 'jit' ? 'traced' : 'one example'} inside ${this.trace.main.kind})`;
    const preview = Array.from(hostData(this).subarray(0, 8), (v) =>
      this.dtype === 'int32' ? String(v) : this.dtype === 'bool' ? String(v !== 0) : v.toPrecision(4),
    ).join(', ');
    return `Tensor(${this.dtype} ${showShape(this.shape)} [${preview}${this.size > 8 ? ', …' : ''}] on ${this.backend.name})`;
  }
}

/** The values on the host: the buffer itself on host backends (read-only!), a download elsewhere. */
const hostData = (t: Tensor): Data => {
  if (t.trace !== undefined && !t.trace.readable) {
    if (t.trace.main.kind === 'jit') {
      throw new Error(
        `the values of a tensor of shape ${showShape(t.shape)} cannot be read inside a jitted function (a program cannot branch on data): ` +
          'return it and read it after the call, or call the function without jit',
      );
    }
    throw new Error(
      `the values of a tensor of shape ${showShape(t.shape)} inside vmap cannot be read (its memory holds the whole batch): ` +
        'return it from the vmapped function and read the batched result',
    );
  }
  const s = internalImpl.storageOf(t);
  return s.backend.read(s.buf, storageDType(s.backend, t.dtype), t.size);
};

/** A copy of storage values in the typed array of a dtype (int32 and bool values are exact in their float storage). */
const typedCopy = (d: Data, dtype: DType): HostData => (dtype === 'int32' ? Int32Array.from(d) : dtype === 'bool' ? Uint8Array.from(d) : d.slice());

/**
 * `values` in the storage of `dtype` on `backend`, checked: int32 values must
 * be integers the backend holds exactly (±2^24 on the GPU backends, whose
 * int32 lives in float32), bool values 0 or 1. Throws a RangeError naming the
 * first bad value.
 */
const toStorage = (values: ArrayLike<number>, dtype: DType, backend: Backend, who: string): Data => {
  if (dtype === 'int32' || dtype === 'bool') {
    const limit = int32Limit(backend);
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      const ok = dtype === 'bool' ? v === 0 || v === 1 : Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31 && Math.abs(v) <= limit;
      if (!ok) {
        throw new RangeError(
          dtype === 'bool'
            ? `${who}: element ${i} is ${v}, not a bool (0, 1, true or false): for x ≠ 0 use notEqual(x, 0)`
            : limit < 2 ** 31 && Number.isInteger(v) && Math.abs(v) < 2 ** 31
              ? `${who}: int32 element ${i} is ${v}, beyond ±2^24, what the ${backend.name} backend holds exactly (int32 in float32): use the cpu or reference backend`
              : `${who}: element ${i} is ${v}, not an int32 (an integer in [-2^31, 2^31)): for a float's integer part use cast(x, 'int32')`,
        );
      }
    }
  }
  return storageDType(backend, dtype) === 'float32' ? Float32Array.from(values) : Float64Array.from(values);
};

/**
 * Library-internal access to tensor storage. Not exported from the package entry.
 * Rule: read-only for buffers you did not allocate yourself.
 */
export const internal = {
  storageOf: (t: Tensor): Storage => internalImpl.storageOf(t),
  /** A new tensor over `storage` (which it retains). */
  wrap: (storage: Storage, shape: Shape, dtype: DType, trace?: Trace): Tensor => internalImpl.wrap(storage, shape, dtype, trace),
  /** A new tensor object over the same memory (a view with another shape, or a traced copy). */
  share: (t: Tensor, shape: Shape = t.shape, trace?: Trace): Tensor => internalImpl.wrap(internalImpl.storageOf(t), shape, t.dtype, trace),
  /** The values on the host (see hostData): read-only, and valid only while `t` is alive. */
  dataOf: hostData,
  /**
   * A tensor on `backend` holding `data`, handed over: adopted where the backend can, else copied. Its dtype is
   * the array's, or `dtype` (int32, bool) whose storage `data` already is (see storageDType).
   */
  adopt: (data: Data, shape: Shape, backend: Backend, dtype?: DType): Tensor =>
    internalImpl.wrap(
      new Storage(backend, backend.adopt?.(data) ?? backend.upload(data)),
      shape,
      dtype ?? (data instanceof Float32Array ? 'float32' : 'float64'),
    ),
  /** Host values of any dtype as a tensor on `backend`, checked (see toStorage): what constructors use. */
  make: (values: ArrayLike<number>, shape: Shape, dtype: DType, backend: Backend, who: string): Tensor =>
    internal.adopt(toStorage(values, dtype, backend, who), shape, backend, dtype),
  /**
   * While `jit` traces a function, random draws are part of its program only
   * when they come from a key passed in (or derived from one): `traceDraws`
   * installs the trace (returning the function that ends it); keys report
   * their derivations through `deriveKey` and every draw goes through `draw`.
   */
  traceDraws: (t: DrawTrace): (() => void) => {
    const prev = drawTrace;
    drawTrace = t;
    return () => {
      drawTrace = prev;
    };
  },
  /** `child` was derived from `parent` by `how`: traced when `parent` is. */
  deriveKey: <K extends object>(parent: K, child: K, how: (p: K) => K): void => {
    const from = drawTrace?.keys.get(parent);
    if (from !== undefined) drawTrace!.keys.set(child, (args) => how(from(args) as K));
  },
  /**
   * A tensor drawn on the host from `key` by `make`. Outside a trace it is
   * `make(key)`. Inside one, a key the jitted function was passed (or derived
   * from one) records the draw into the program, to be redone from each call's
   * key; any other key is an error (its values would be frozen).
   */
  draw: <K extends object>(what: string, key: K, make: (k: K) => Tensor): Tensor => {
    const t = drawTrace;
    if (t === undefined) return make(key);
    const from = t.keys.get(key);
    if (from === undefined) {
      throw new Error(
        `${what} inside ${t.who} from a key it was not passed: its values would be frozen into the program and repeat on every call; ` +
          'pass the key as an argument (draws from it are redone each call), or draw outside and pass the tensor in',
      );
    }
    // The draw itself runs untraced (the key's own derivations and draws are plain inside it).
    drawTrace = undefined;
    let value: Tensor;
    try {
      value = make(key);
    } finally {
      drawTrace = t;
    }
    return t.record(what, (args) => make(from(args) as K), value);
  },
  /** A tensor on `backend` holding `data` (copied; `data` stays the caller's). */
  fromHost: (data: Data, shape: Shape, backend: Backend): Tensor =>
    internalImpl.wrap(new Storage(backend, backend.upload(data)), shape, data instanceof Float32Array ? 'float32' : 'float64'),
  /** The storage dtype of a tensor on its backend (see storageDType). */
  storageDTypeOf: (t: Tensor) => storageDType(t.backend, t.dtype),
};

// ---------------------------------------------------------------------------
// Lifetimes: dispose, tidy, keep.
// ---------------------------------------------------------------------------

/** Calls `f` on every tensor reachable through arrays and plain objects of `x`. */
const eachTensor = (x: unknown, f: (t: Tensor) => void, seen = new Set<unknown>()): void => {
  if (x instanceof Tensor) {
    f(x);
    return;
  }
  if (x === null || typeof x !== 'object' || seen.has(x)) return;
  seen.add(x);
  if (Array.isArray(x)) {
    for (const v of x) eachTensor(v, f, seen);
    return;
  }
  if (x instanceof Map) {
    for (const v of x.values()) eachTensor(v, f, seen);
    return;
  }
  const proto = Object.getPrototypeOf(x);
  if (proto === Object.prototype || proto === null) for (const v of Object.values(x)) eachTensor(v, f, seen);
};

/** Disposes every tensor in `x` (a tensor, or arrays and plain objects holding tensors). */
export const dispose = (x: unknown): void => eachTensor(x, (t) => t.dispose());

/** Marks every tensor in `x` as kept: no `tidy` disposes them. Returns `x`. */
export const keep = <A>(x: A): A => {
  eachTensor(x, (t) => t.keep());
  return x;
};

/**
 * Runs `f` and disposes every tensor made while it ran, except those in its
 * result (found through arrays and plain objects) and those `keep` marked; the
 * returned ones then belong to the enclosing `tidy`, if any. Synchronous: a
 * promise returned by `f` is refused (run each step of async work in a tidy).
 *
 * @example
 * const loss = tidy(() => mean(square(sub(predict(params, x), y)))); // intermediates freed
 */
export const tidy = <A>(f: () => A): A => {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: A;
  try {
    result = f();
  } catch (e) {
    scopes.pop();
    for (const t of scope) if (!t.isKept) t.dispose();
    throw e;
  }
  scopes.pop();
  if (result instanceof Promise) {
    throw new TypeError('tidy: the function returned a promise; tidy is synchronous (wrap each synchronous step instead)');
  }
  const returned = new Set<Tensor>();
  const keepWithParts = (t: Tensor): void => {
    returned.add(t);
    for (const p of t.trace?.parts ?? []) keepWithParts(p); // a traced tensor's value lives one level down
  };
  eachTensor(result, keepWithParts);
  const parent = scopes[scopes.length - 1];
  for (const t of scope) {
    if (returned.has(t) || t.isKept) parent?.add(t);
    else t.dispose();
  }
  return result;
};

// ---------------------------------------------------------------------------
// Constructors. Those taking user data return Either; the rest cannot fail on
// valid shapes and throw ShapeError on invalid ones. Each takes the backend to
// place the tensor on (a name or a Backend), else the default backend.
// ---------------------------------------------------------------------------

/** A value's description for messages: its type, and the value when short. */
const describeValue = (v: unknown): string =>
  v === null
    ? 'null'
    : Array.isArray(v)
      ? 'an array'
      : typeof v === 'string'
        ? `the string ${JSON.stringify(v.length > 20 ? `${v.slice(0, 20)}…` : v)}`
        : typeof v;

/** Deeper nesting than this is refused (a cycle, or a mistake): no tensor has 64 axes, and the stack stays small. */
const MAX_RANK = 64;

const inferShape = (x: NestedInput, path = '', depth = 0): E.Either<ShapeError, number[]> => {
  if (typeof x === 'number' || typeof x === 'boolean') return E.right([]);
  if (!Array.isArray(x))
    return E.left(
      new ShapeError(`tensor(): expected a number, a boolean or a nested array of them${path === '' ? '' : ` at ${path}`}, found ${describeValue(x)}`),
    );
  if (depth >= MAX_RANK)
    return E.left(new ShapeError(`tensor(): arrays nested more than ${MAX_RANK} deep (an array that contains itself?): a tensor has at most ${MAX_RANK} axes`));
  if (x.length === 0) return E.right([0]);
  const first = inferShape(x[0]!, `${path}[0]`, depth + 1);
  if (E.isLeft(first)) return first;
  for (let i = 1; i < x.length; i++) {
    const s = inferShape(x[i]!, `${path}[${i}]`, depth + 1);
    if (E.isLeft(s)) return s;
    if (s.right.join() !== first.right.join()) {
      return E.left(
        new ShapeError(`tensor(): ragged nested array: element 0 has shape ${showShape(first.right)} but element ${i} has shape ${showShape(s.right)}`),
      );
    }
  }
  return E.right([x.length, ...first.right]);
};

const placed = (backend: BackendLike | undefined): Backend => (backend === undefined ? defaultBackend() : resolveBackend(backend));

/** A constructor's failure as a ShapeError (the `Left` constructors return). */
const asShapeError = (e: unknown): ShapeError => (e instanceof ShapeError ? e : new ShapeError(e instanceof Error ? e.message : String(e)));

/**
 * A tensor from nested arrays: `tensor([[1, 2], [3, 4]])`, `tensor([1, 2], 'int32')`,
 * `tensor([true, false])` (a bool tensor: booleans without a dtype give bool).
 * Returns `Left` on a ragged array, a non-number element, or a value the dtype
 * cannot hold (an int32 that is not an integer in range, a bool other than 0 and 1).
 */
export const tensor = (values: NestedInput, dtype?: DType, backend?: BackendLike): E.Either<ShapeError, Tensor> => {
  const bad = dtype === undefined ? undefined : badDType(dtype, 'tensor()');
  if (bad !== undefined) return E.left(new ShapeError(bad));
  const shape = inferShape(values);
  if (E.isLeft(shape)) return shape;
  const flat = [values].flat(Infinity as 1) as unknown[];
  const bools = flat.filter((v) => typeof v === 'boolean').length;
  if (bools > 0 && bools < flat.length)
    return E.left(new ShapeError('tensor(): the values mix booleans and numbers: give one kind (and a dtype for numbers as bool: 0 and 1)'));
  const dt = dtype ?? (flat.length > 0 && bools === flat.length ? 'bool' : 'float32');
  return E.tryCatch(
    () =>
      internal.make(
        flat.map((v) => (typeof v === 'boolean' ? Number(v) : (v as number))),
        makeShape(shape.right),
        dt,
        placed(backend),
        'tensor()',
      ),
    asShapeError,
  );
};

/** A tensor from a flat array (copied) and a shape. `Left` if the sizes differ, or a value the dtype cannot hold. */
export const fromArray = (values: ArrayLike<number>, shape: readonly number[], dtype: DType = 'float32', backend?: BackendLike): E.Either<ShapeError, Tensor> =>
  E.tryCatch(() => {
    const bad = badDType(dtype, 'fromArray()');
    if (bad !== undefined) throw new ShapeError(bad);
    if (values === null || typeof values !== 'object' || typeof values.length !== 'number') {
      throw new ShapeError(`fromArray(): values must be an array or a typed array of numbers, got ${describeValue(values)}`);
    }
    if (ArrayBuffer.isView(values) && (values instanceof DataView || values instanceof BigInt64Array || values instanceof BigUint64Array)) {
      throw new ShapeError(`fromArray(): values must hold numbers, got a ${values.constructor.name} (convert with Array.from(values, Number))`);
    }
    if (!ArrayBuffer.isView(values)) {
      const i = Array.prototype.findIndex.call(values, (v: unknown) => typeof v !== 'number');
      if (i >= 0) throw new ShapeError(`fromArray(): element ${i} is ${describeValue((values as ArrayLike<unknown>)[i])}, not a number`);
    }
    const s = makeShape(shape);
    if (sizeOf(s) !== values.length) {
      throw new ShapeError(`fromArray(): ${values.length} values cannot fill shape ${showShape(s)} (${sizeOf(s)} elements)`);
    }
    return internal.make(values, s, dtype, placed(backend), 'fromArray()');
  }, asShapeError);

/** A tensor of one value repeated (for int32 an integer, for bool 0, 1, true or false; a boolean value without a dtype gives bool). */
export const full = (
  shape: readonly number[],
  value: number | boolean,
  dtype: DType = typeof value === 'boolean' ? 'bool' : 'float32',
  backend?: BackendLike,
): Tensor => {
  checkDType(dtype, 'full()');
  if (typeof value === 'boolean') value = Number(value);
  if (typeof value !== 'number') throw new TypeError(`full(): the value must be a number, got ${describeValue(value)}`);
  const s = makeShape(shape);
  const b = placed(backend);
  if (dtype === 'int32' || dtype === 'bool') internal.make([value], makeShape([1]), dtype, b, 'full()').dispose(); // checks the value
  return internal.wrap(new Storage(b, b.full(storageDType(b, dtype), sizeOf(s), value)), s, dtype);
};

/** A tensor of zeros. */
export const zeros = (shape: readonly number[], dtype: DType = 'float32', backend?: BackendLike): Tensor =>
  full(shape, 0, checkDType(dtype, 'zeros()'), backend);
/** A tensor of ones. */
export const ones = (shape: readonly number[], dtype: DType = 'float32', backend?: BackendLike): Tensor => full(shape, 1, checkDType(dtype, 'ones()'), backend);
/** A rank-0 tensor (a boolean value without a dtype gives bool). */
export const scalar = (value: number | boolean, dtype: DType = typeof value === 'boolean' ? 'bool' : 'float32', backend?: BackendLike): Tensor => {
  if (typeof value !== 'number' && typeof value !== 'boolean') throw new TypeError(`scalar(): the value must be a number, got ${describeValue(value)}`);
  return full([], value, checkDType(dtype, 'scalar()'), backend);
};

/** The same values on another backend (a copy; `t` itself when it is there already). */
export const toBackend = (t: Tensor, backend: BackendLike): Tensor => {
  const b = resolveBackend(backend);
  if (t.backend === b) return t;
  if (t.dtype === 'int32' || t.dtype === 'bool') return internal.make(hostData(t), t.shape, t.dtype, b, 'toBackend');
  return internal.fromHost(hostData(t), t.shape, b);
};
