/**
 * `jit`: trace a function once per signature of its arguments into a program
 * (a flat list of primitive applications over numbered values, printable like
 * a jaxpr), then replay that program on later calls: the kernels run directly
 * on the backend's buffers, with no tape nodes, no tracers, no shape rules and
 * no tensor objects for the intermediates, and each intermediate buffer goes
 * back to the backend right after its last use (liveness).
 *
 * Tracing runs the function once on its real arguments, as a transformation
 * like the others (level.ts): the arguments become `JitTracer`s, every
 * primitive that reaches this level is recorded and computed one level down,
 * so the first call's result is the eager result. Everything a transformation
 * inside `f` binds (the tape's backward pass in `jit(valueAndGrad(f))`, a
 * `vmap`'s batched ops) arrives here as primitives and is recorded too.
 *
 * What a program may depend on: the shapes, dtypes and backend of its tensor
 * arguments, and the values of its plain (number, string, boolean) arguments,
 * which key the cache. Tensors the function closes over, or makes from host
 * values (`scalar(2)`, `oneHot(labels)`), are constants of the program, frozen
 * at trace time, as in JAX. Reading a traced value on the host (`item`,
 * `toArray`) inside the function is an error: a program cannot branch on data.
 * `Key` arguments are dynamic: a draw from one (or from a key derived from one
 * by `fold`/`split`: dropout's mask, a `uniform`) is recorded as a host step
 * and redone from each call's key, the same numbers as eager. A draw from a
 * key the function closes over is an error (its values would be frozen).
 *
 * Composition: `jit(valueAndGrad(f))`, `jit(vmap(f))`, `jit(jvp(f))` trace
 * the transformation's work into the program. Called with arguments traced by
 * an outer transformation (`grad(jit(f))`, `vmap(jit(f))`), or from inside
 * another jitted function, `jit(f)` runs `f` in place (inlined) so the outer
 * transformation sees every op: correct, but not faster than eager; put `jit`
 * outermost for speed.
 */
import { bind, Key, showShape, storageDType, Tensor, type Backend, type DType, type Primitive, type Shape } from '../core/index.js';
import { internal, Storage } from '../core/internal.js';
import { fnName } from './grad.js';
import { Tracer, Transformation } from './level.js';
import { fuse, type FusionPlan } from './fusion.js';
import './rules/index.js';

// ---------------------------------------------------------------------------
// The program
// ---------------------------------------------------------------------------

/** One value of a program: an argument, a constant, or an equation's result. */
export interface Slot {
  /** Its shape, fixed by the signature the program was traced for. */
  readonly shape: Shape;
  /** Its element type. */
  readonly dtype: DType;
}

/** One primitive application: `outs = prim[params](ins)`. */
export interface Equation {
  /** A primitive, or a fused optimizer update (`momentumStep`, `adamStep`). */
  readonly prim: string;
  /**
   * 'kernel': a backend kernel; 'view': the same buffer with another shape (reshape); 'fused': a
   * FusedKernels entry (several results); 'host': a random draw from a key argument, redone on the
   * host each call (`params` makes it from the call's keys).
   */
  readonly kind: 'kernel' | 'view' | 'fused' | 'host';
  /** The slots it reads. */
  readonly ins: readonly number[];
  /** The primitive's parameters (for 'host': the function that redoes the draw). */
  readonly params: unknown;
  /** The slots it writes (one, but a fused optimizer update's several). */
  readonly outs: readonly number[];
}

/** What `jit` traced: a program over numbered slots (arguments, then constants, then results). */
export interface Program {
  /** The function's name, for printing. */
  readonly name: string;
  readonly backend: Backend;
  readonly slots: readonly Slot[];
  /** Slots 0 … args−1 are the tensor arguments, in the order of their leaves. */
  readonly args: number;
  /** How many `Key` arguments the program draws from (redone each call). */
  readonly keys: number;
  /** The constants: kept copies of the tensors the function closed over or made from host values. */
  readonly consts: readonly Tensor[];
  /** The slot of each constant. */
  readonly constSlots: readonly number[];
  readonly eqns: readonly Equation[];
  /** The result's tensor leaves, as slots. */
  readonly outputs: readonly number[];
  /** Element-wise chains fused into one kernel, where the backend can run them (see fusion.ts). */
  readonly fusion: FusionPlan | undefined;
  /** The program in a jaxpr-like notation, with its fusion groups. */
  toString(): string;
}

// ---------------------------------------------------------------------------
// Tracing
// ---------------------------------------------------------------------------

/** Raised inside a trace when the function closes over a value traced by an outer transformation: the call then runs inlined. */
class ClosedOverTracer extends Error {}

/** The error for work a program cannot contain. */
export class JitError extends Error {
  override readonly name = 'JitError';
}

class JitTracer extends Tracer {
  constructor(
    readonly main: JitTrace,
    readonly value: Tensor,
    readonly slot: number,
  ) {
    super(value, false);
  }

  get parts(): readonly Tensor[] {
    return [this.value];
  }
}

class JitTrace extends Transformation {
  readonly kind = 'jit';
  readonly slots: Slot[] = [];
  readonly eqns: Equation[] = [];
  readonly consts: Tensor[] = [];
  readonly constSlots: number[] = [];
  readonly #constSlot = new Map<Tensor, number>();
  #nArgs = 0;

  constructor(readonly who: string) {
    super();
  }

  #newSlot(t: { shape: Shape; dtype: DType }): number {
    this.slots.push({ shape: t.shape, dtype: t.dtype });
    return this.slots.length - 1;
  }

  /** An argument: the next argument slot (arguments come before any constant). */
  argument(t: Tensor): Tensor {
    this.#nArgs++;
    return this.wrap(t, this.#newSlot(t));
  }

  get args(): number {
    return this.#nArgs;
  }

  wrap(value: Tensor, slot: number): Tensor {
    return internal.share(value, value.shape, new JitTracer(this, value, slot));
  }

  primalOf(t: Tensor): Tensor {
    return t.trace?.main === this ? (t.trace as JitTracer).value : t;
  }

  slotOf(t: Tensor): number {
    if (t.trace?.main === this) return (t.trace as JitTracer).slot;
    if (t.trace !== undefined) throw new ClosedOverTracer();
    let s = this.#constSlot.get(t);
    if (s === undefined) {
      s = this.#newSlot(t);
      this.#constSlot.set(t, s);
      this.constSlots.push(s);
      // The program's own reference: the tensor may be disposed (by a tidy in f) after the trace.
      this.consts.push(internal.share(t).keep());
    }
    return s;
  }

  protected apply(prim: string, inputs: readonly Tensor[], params: unknown): Tensor {
    if (prim === 'custom') {
      // Forward only: the user's forward runs on the tracers, so its ops are recorded (its VJP is the tape's business).
      const custom = params as { name: string; forward: (xs: readonly Tensor[]) => Tensor };
      return custom.forward(inputs);
    }
    if (prim === 'stopGradient') return inputs[0]!;
    const ins = inputs.map((t) => this.slotOf(t));
    const out = bind(prim as Primitive, inputs.map((t) => this.primalOf(t)) as never, params as never);
    const slot = this.#newSlot(out);
    this.eqns.push({ prim, kind: prim === 'reshape' ? 'view' : 'kernel', ins, params, outs: [slot] });
    return this.wrap(out, slot);
  }

  /** A random draw from a key argument (core's `internal.draw`): recorded to be redone from each call's keys. */
  draw(what: string, make: (keys: readonly object[]) => Tensor, value: Tensor, backend: Backend): Tensor {
    if (value.backend !== backend) {
      throw new JitError(
        `${this.who}: ${what} made a tensor on '${value.backend.name}', not on the program's backend '${backend.name}': pass its backend to the draw`,
      );
    }
    const slot = this.#newSlot(value);
    this.eqns.push({ prim: what, kind: 'host', ins: [], params: make, outs: [slot] });
    return this.wrap(value, slot);
  }

  /** A fused optimizer update on traced operands (ops.ts routes them here): recorded with its several results. */
  fused(name: string, inputs: readonly Tensor[], hyper: unknown, run: (values: readonly Tensor[]) => readonly Tensor[]): Tensor[] {
    const ins = inputs.map((t) => this.slotOf(t));
    const outs = run(inputs.map((t) => this.primalOf(t)));
    const slots = outs.map((o) => this.#newSlot(o));
    this.eqns.push({ prim: name, kind: 'fused', ins, params: hyper, outs: slots });
    return outs.map((o, i) => this.wrap(o, slots[i]!));
  }
}

// ---------------------------------------------------------------------------
// Arguments and results: trees with tensor leaves (dynamic) and plain leaves (static)
// ---------------------------------------------------------------------------

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null);

/**
 * The signature of an argument list and its tensor leaves in order (records
 * by sorted key, as tree.ts orders leaves): `tokens` holds, per tensor, its
 * dtype, backend (the instance) and shape, and per static leaf (number, string,
 * boolean, null, undefined) its value, with the structure's brackets and keys.
 * Anything else is refused with the path to it. No strings are built here: a
 * call compares its tokens with the last call's, and only a new signature
 * joins them into a cache key.
 */
const flatten = (who: string, args: readonly unknown[]): { tokens: unknown[]; tensors: Tensor[]; keys: Key[] } => {
  const tensors: Tensor[] = [],
    tokens: unknown[] = [],
    keys: Key[] = [];
  const walk = (v: unknown, path: () => string): void => {
    if (v instanceof Tensor) {
      tensors.push(v);
      tokens.push(TENSOR, v.dtype, backendId(v.backend), v.shape.length, ...v.shape);
    } else if (v instanceof Key) {
      // Dynamic: draws from it (or keys derived from it) are redone each call.
      keys.push(v);
      tokens.push(KEY);
    } else if (Array.isArray(v)) {
      tokens.push(ARRAY, v.length);
      v.forEach((e, i) => {
        walk(e, () => `${path()}[${i}]`);
      });
    } else if (isPlainObject(v)) {
      const keys = Object.keys(v).sort();
      tokens.push(RECORD, keys.length, ...keys);
      for (const k of keys) walk(v[k], () => `${path()}.${k}`);
    } else if (v === undefined || v === null || typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean') {
      tokens.push(typeof v, v);
    } else {
      const what = typeof v === 'object' ? (v.constructor?.name ?? 'object') : typeof v;
      throw new TypeError(
        `${who}: ${path()} is a ${what}; a jitted function takes tensors (traced), Keys (draws redone each call) and numbers, strings or booleans (static: each value is its own program). ` +
          'Close over it instead (it is then frozen into the program), or call the function without jit.',
      );
    }
  };
  args.forEach((a, i) => {
    walk(a, () => `argument ${i}`);
  });
  return { tokens, tensors, keys };
};
/** Backends by instance, not name: two cpu backends (one thread, two) hold different memories. */
const backendIds = new WeakMap<Backend, number>();
const backendId = (b: Backend): number => {
  let id = backendIds.get(b);
  if (id === undefined) {
    id = nextBackendId++;
    backendIds.set(b, id);
  }
  return id;
};
let nextBackendId = 1;
const TENSOR = '\u0001T',
  ARRAY = '\u0001A',
  RECORD = '\u0001R',
  KEY = '\u0001K';
const sameTokens = (a: readonly unknown[], b: readonly unknown[]): boolean => {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
};
/** A signature's cache key (distinct signatures, distinct keys: every token is typed by the one before it). */
const keyOf = (tokens: readonly unknown[]): string =>
  tokens.map((t) => (typeof t === 'number' ? (Object.is(t, -0) ? '-0' : String(t)) : (JSON.stringify(t) ?? 'undefined'))).join(',');

/** Rebuilds `tree` with its tensor leaves replaced in order. */
const refill = (tree: unknown, next: () => Tensor): unknown => {
  if (tree instanceof Tensor) return next();
  if (Array.isArray(tree)) return tree.map((v) => refill(v, next));
  if (isPlainObject(tree)) {
    // Leaves in sorted key order (as `flatten` and tree.ts take them), the record's own key order kept.
    const filled = new Map(
      Object.keys(tree)
        .sort()
        .map((k) => [k, refill(tree[k], next)] as const),
    );
    return Object.fromEntries(Object.keys(tree).map((k) => [k, filled.get(k)]));
  }
  return tree;
};

const tensorLeaves = (tree: unknown, out: Tensor[] = []): Tensor[] => {
  if (tree instanceof Tensor) out.push(tree);
  else if (Array.isArray(tree)) for (const v of tree) tensorLeaves(v, out);
  else if (isPlainObject(tree)) for (const k of Object.keys(tree).sort()) tensorLeaves(tree[k], out);
  return out;
};

// ---------------------------------------------------------------------------
// Lowering: dead code out, liveness in, fusion groups
// ---------------------------------------------------------------------------

interface Lowered extends Program {
  /** The result tree with placeholders where tensors go. */
  readonly template: unknown;
  /** Per slot, the slot whose buffer it uses (views share their input's). */
  readonly root: readonly number[];
  /** After equation i, the buffers (root slots) whose last use it was. */
  readonly freeAfter: readonly (readonly number[])[];
}

const letters = (i: number): string => {
  let s = '';
  do {
    s = String.fromCharCode(97 + (i % 26)) + s;
    i = Math.floor(i / 26) - 1;
  } while (i >= 0);
  return s;
};

const dtypeShort: Record<string, string> = { float32: 'f32', float64: 'f64', int32: 'i32', bool: 'bool' };

const showParam = (v: unknown): string => {
  if (Array.isArray(v)) return v.length > 8 ? `[${v.slice(0, 8).join(',')},… ${v.length}]` : `[${v.join(',')}]`;
  if (ArrayBuffer.isView(v)) return `<${(v as unknown as ArrayLike<number>).length} values>`;
  if (isPlainObject(v))
    return `{${Object.entries(v)
      .map(([k, x]) => `${k}=${showParam(x)}`)
      .join(' ')}}`;
  return String(v);
};

const showParams = (p: unknown): string =>
  p === null || p === undefined
    ? ''
    : isPlainObject(p)
      ? `[${Object.entries(p)
          .map(([k, x]) => `${k}=${showParam(x)}`)
          .join(' ')}]`
      : `[${showParam(p)}]`;

const printProgram = (p: Omit<Lowered, 'toString'>): string => {
  const name = (s: number) => letters(s);
  const typed = (s: number) => `${name(s)}:${dtypeShort[p.slots[s]!.dtype] ?? p.slots[s]!.dtype}${showShape(p.slots[s]!.shape)}`;
  const argNames = Array.from({ length: p.args }, (_, i) => typed(i)).join(' ');
  const constNames = p.constSlots.map(typed).join(' ');
  const groupOf = new Map<number, number>();
  for (const [gi, g] of (p.fusion?.groups ?? []).entries()) for (const e of g.eqns) groupOf.set(e, gi);
  const lines = p.eqns.map((e, i) => {
    const g = groupOf.get(i);
    const tag = g === undefined ? '' : `  ⟨fused ${g}⟩`;
    if (e.kind === 'host') return `    ${e.outs.map(typed).join(' ')} = ${e.prim} ⟨drawn from the key arguments each call⟩`;
    return `    ${e.outs.map(typed).join(' ')} = ${e.prim}${showParams(e.params)} ${e.ins.map(name).join(' ')}${tag}`;
  });
  const groups = (p.fusion?.groups ?? []).map(
    (g, gi) => `  fused ${gi}: ${g.eqns.length} ops, ${g.elements} elements, one pass (${g.eqns.map((e) => p.eqns[e]!.prim).join(' → ')})`,
  );
  return [
    `{ lambda ${constNames === '' ? '' : `${constNames} `}; ${argNames}${p.keys > 0 ? ` + ${p.keys} key${p.keys > 1 ? 's' : ''}` : ''} . let`,
    ...lines,
    `  in (${p.outputs.map(name).join(', ')}) }`,
    ...(groups.length > 0 ? ['', ...groups] : []),
  ].join('\n');
};

const lower = (
  main: JitTrace,
  name: string,
  backend: Backend,
  keys: number,
  outputs: readonly number[],
  template: unknown,
  opts: { fuse: boolean },
): Lowered => {
  const nSlots = main.slots.length;
  // Dead code: an equation none of whose results reaches an output.
  const live = new Uint8Array(nSlots);
  for (const o of outputs) live[o] = 1;
  const kept: Equation[] = [];
  for (let i = main.eqns.length - 1; i >= 0; i--) {
    const e = main.eqns[i]!;
    if (!e.outs.some((o) => live[o] === 1)) continue;
    kept.push(e);
    for (const s of e.ins) live[s] = 1;
  }
  const eqns = kept.reverse();
  const root = Array.from({ length: nSlots }, (_, i) => i);
  for (const e of eqns) if (e.kind === 'view') root[e.outs[0]!] = root[e.ins[0]!]!;
  // Liveness: each intermediate buffer is freed after its last use, unless it is (a view of) a result.
  const isConst = new Set(main.constSlots);
  const resultRoots = new Set(outputs.map((o) => root[o]!));
  const lastUse = new Map<number, number>();
  eqns.forEach((e, i) => {
    for (const o of e.outs) if (root[o] === o) lastUse.set(o, i); // a result nobody reads goes right away
    for (const s of e.ins) lastUse.set(root[s]!, i);
  });
  const freeAfter: number[][] = eqns.map(() => []);
  for (const [r, i] of lastUse) if (r >= main.args && !isConst.has(r) && !resultRoots.has(r)) freeAfter[i]!.push(r);
  const base = {
    name,
    backend,
    slots: main.slots,
    args: main.args,
    keys,
    consts: main.consts,
    constSlots: main.constSlots,
    eqns,
    outputs,
    template,
    root,
    freeAfter,
  };
  const fusion = opts.fuse ? fuse(base) : undefined;
  const program = { ...base, fusion };
  return { ...program, toString: () => printProgram(program) };
};

// ---------------------------------------------------------------------------
// Replay
// ---------------------------------------------------------------------------

type KernelFn = (inputs: readonly { buf: unknown; shape: Shape; dtype: DType }[], params: unknown, out: Slot) => unknown;
type FusedFn = (...a: unknown[]) => readonly unknown[];

const replay = (p: Lowered, args: readonly Tensor[], keys: readonly Key[]): unknown => {
  const be = p.backend;
  /** The tensors host draws made this call, by slot: disposed (not freed) at their last use. */
  const drawn = new Map<number, Tensor>();
  const release = (r: number) => {
    const t = drawn.get(r);
    if (t === undefined) be.free(bufs[r]);
    else {
      t.dispose();
      drawn.delete(r);
    }
  };
  const bufs = new Array<unknown>(p.slots.length);
  for (let i = 0; i < p.args; i++) bufs[i] = internal.storageOf(args[i]!).buf;
  for (let i = 0; i < p.consts.length; i++) bufs[p.constSlots[i]!] = internal.storageOf(p.consts[i]!).buf;
  const kernels = be.kernels as unknown as Record<string, KernelFn>;
  const fusedKernels = be.fused as unknown as Record<string, FusedFn>;
  // Kernels see storage dtypes (int32 and bool live in float storage: see storageDType), as bind gives them.
  const stored = p.slots.map((slot) => {
    const dtype = storageDType(be, slot.dtype);
    return dtype === slot.dtype ? slot : { shape: slot.shape, dtype };
  });
  const operand = (s: number) => ({ buf: bufs[s], shape: p.slots[s]!.shape, dtype: stored[s]!.dtype });
  const groups = p.fusion;
  let i = 0;
  try {
    for (; i < p.eqns.length; i++) {
      const run = groups?.runAt[i];
      if (run !== undefined) {
        // A fused chain: one kernel for its equations, only its result materialized.
        bufs[run.out] = run.kernel(run.ins.map((s) => bufs[s]));
        for (let j = i; j <= run.last; j++) for (const r of p.freeAfter[j]!) if (!run.internal.has(r)) release(r);
        i = run.last;
        continue;
      }
      const e = p.eqns[i]!;
      if (e.kind === 'view') bufs[e.outs[0]!] = bufs[e.ins[0]!];
      else if (e.kind === 'kernel') bufs[e.outs[0]!] = kernels[e.prim]!(e.ins.map(operand), e.params, stored[e.outs[0]!]!);
      else if (e.kind === 'host') {
        const t = (e.params as (keys: readonly object[]) => Tensor)(keys);
        drawn.set(e.outs[0]!, t);
        bufs[e.outs[0]!] = internal.storageOf(t).buf;
      } else {
        const res = fusedKernels[e.prim]!(...e.ins.map(operand), e.params);
        e.outs.forEach((o, k) => {
          bufs[o] = res[k];
        });
      }
      for (const r of p.freeAfter[i]!) release(r);
    }
  } catch (err) {
    // Give back what this replay allocated and will not return.
    const freed = new Set<number>();
    for (let j = 0; j < i; j++) for (const r of p.freeAfter[j]!) freed.add(r);
    for (let j = 0; j < i; j++)
      for (const o of p.eqns[j]!.outs) if (p.root[o] === o && bufs[o] !== undefined && !freed.has(o) && !drawn.has(o)) be.free(bufs[o]);
    for (const t of drawn.values()) t.dispose();
    throw err;
  }
  // Results: one storage per buffer; arguments and constants come back as views of theirs.
  const storages = new Map<number, Storage>();
  let k = 0;
  const result = refill(p.template, () => {
    const o = p.outputs[k++]!;
    const r = p.root[o]!,
      slot = p.slots[o]!;
    if (r < p.args) return internal.share(args[r]!, slot.shape);
    const c = p.constSlots.indexOf(r);
    if (c >= 0) return internal.share(p.consts[c]!, slot.shape);
    const d = drawn.get(r);
    if (d !== undefined) return internal.share(d, slot.shape);
    let st = storages.get(r);
    if (st === undefined) {
      st = new Storage(be, bufs[r]);
      storages.set(r, st);
    }
    return internal.wrap(st, slot.shape, slot.dtype);
  });
  for (const t of drawn.values()) t.dispose(); // results share their storage
  return result;
};

// ---------------------------------------------------------------------------
// The transformation
// ---------------------------------------------------------------------------

/** Options of `jit`. */
export interface JitOptions {
  /** Programs kept (one per signature), least recently used dropped first; default 16. */
  readonly cacheSize?: number;
  /** Fuse element-wise chains into one kernel where the backend can (default true); results are the same bits either way. */
  readonly fuse?: boolean;
}

/** A jitted function: call it like `f`; inspect what it runs. */
export interface Jitted<A extends readonly unknown[], R> {
  (...args: A): R;
  /** The program `f` traces to for these arguments (tracing it now if it is not cached). */
  lower(...args: A): Program;
  /** How many times `f` has been traced (a new signature, or a program dropped from the cache). */
  readonly traces: number;
  /** Programs cached now. */
  readonly cached: number;
  /** Calls that ran `f` inlined (arguments traced by an outer transformation). */
  readonly inlined: number;
  /** Drops every cached program (and the constants it holds). */
  clear(): void;
}

const disposeProgram = (p: Lowered): void => {
  for (const c of p.consts) c.dispose();
};

/**
 * Traces `f` once per signature of its arguments into a program and replays
 * it on later calls (see the module comment): the same results, bit for bit,
 * without the per-op bookkeeping of eager execution.
 *
 * @example
 * const step = jit((p: Params, x: Tensor, y: Tensor) => valueAndGrad((q: Params) => loss(q, x, y))(p));
 * const { value, grads } = step(params, x, y);   // traced on the first call, replayed after
 * console.log(String(step.lower(params, x, y))); // the program, with its fusion groups
 */
export const jit = <A extends readonly unknown[], R>(f: (...args: A) => R, opts: JitOptions = {}): Jitted<A, R> => {
  const who = `jit(${fnName(f as (...a: never[]) => unknown)})`;
  const cacheSize = opts.cacheSize ?? 16;
  if (!(Number.isInteger(cacheSize) && cacheSize >= 1)) throw new RangeError(`${who}: cacheSize must be an integer ≥ 1, got ${cacheSize}`);
  const cache = new Map<string, Lowered>();
  let traces = 0,
    inlined = 0;

  /** Traces f on `args`, returning its (eager) result and the program; undefined program: f closed over an outer tracer. */
  const trace = (args: A, tensors: readonly Tensor[], keys: readonly Key[]): { result: R; program: Lowered | undefined } => {
    const be = tensors[0]?.backend;
    if (be === undefined) throw new TypeError(`${who}: no argument is a tensor: there is nothing to trace (call the function directly)`);
    for (const t of tensors) {
      if (t.backend !== be) throw new Error(`${who}: the arguments live on two backends, '${be.name}' and '${t.backend.name}': move one with toBackend`);
    }
    traces++;
    const main = new JitTrace(who);
    // Draws from the key arguments (and keys derived from them) are recorded; any other draw is refused.
    const keyOf = new WeakMap<object, (args: readonly object[]) => object>();
    keys.forEach((k, i) => {
      keyOf.set(k, (a) => a[i]!);
    });
    const release = internal.traceDraws({ who, keys: keyOf, record: (what, make, value) => main.draw(what, make, value, be) });
    try {
      const wrapped = tensors.map((t) => main.argument(t));
      let k = 0;
      const out = f(...(refill(args, () => wrapped[k++]!) as unknown as A));
      const outs = tensorLeaves(out);
      const outputs = outs.map((t) => main.slotOf(t));
      // The eager results, one level down, in the result's structure.
      let j = 0;
      const result = refill(out, () => main.primalOf(outs[j++]!)) as R;
      return { result, program: lower(main, who, be, keys.length, outputs, out, { fuse: opts.fuse ?? true }) };
    } catch (e) {
      if (!(e instanceof ClosedOverTracer)) throw e;
      for (const c of main.consts) c.dispose();
    } finally {
      main.finish();
      release();
    }
    // f uses a value an outer transformation traces (through a closure): run it where it is, every time.
    inlined++;
    return { result: f(...args), program: undefined };
  };

  const lookup = (args: A, tokens: readonly unknown[], tensors: readonly Tensor[], keys: readonly Key[]): { program: Lowered | undefined; result?: R } => {
    const key = keyOf(tokens);
    const hit = cache.get(key);
    if (hit !== undefined) {
      cache.delete(key);
      cache.set(key, hit); // most recently used last
      last = { tokens, program: hit };
      return { program: hit };
    }
    const { result, program } = trace(args, tensors, keys);
    if (program !== undefined) {
      cache.set(key, program);
      last = { tokens, program };
      if (cache.size > cacheSize) {
        const [oldest, p] = cache.entries().next().value as [string, Lowered];
        cache.delete(oldest);
        disposeProgram(p);
        if (last?.program === p) last = undefined;
      }
    }
    return { program, result };
  };

  /** The last call's signature and program: a step called with the same shapes skips the cache key. */
  let last: { tokens: readonly unknown[]; program: Lowered } | undefined;

  const call = (...args: A): R => {
    const { tokens, tensors, keys } = flatten(who, args);
    for (const t of tensors) {
      if (t.trace !== undefined) {
        // Traced by an outer transformation (or an enclosing jit): run f where it is.
        inlined++;
        return f(...args);
      }
    }
    if (last !== undefined && sameTokens(tokens, last.tokens)) return replay(last.program, tensors, keys) as R;
    const r = lookup(args, tokens, tensors, keys);
    return (r.result !== undefined ? r.result : replay(r.program!, tensors, keys)) as R;
  };

  const jitted = call as Jitted<A, R>;
  Object.defineProperties(jitted, {
    lower: {
      value: (...args: A): Program => {
        const { tokens, tensors, keys } = flatten(who, args);
        const r = lookup(args, tokens, tensors, keys);
        if (r.result !== undefined) for (const t of tensorLeaves(r.result)) t.dispose();
        if (r.program === undefined)
          throw new JitError(`${who}: the function closes over a tensor traced by an outer transformation, so it runs inlined and has no program of its own`);
        return r.program;
      },
    },
    traces: { get: () => traces },
    cached: { get: () => cache.size },
    inlined: { get: () => inlined },
    clear: {
      value: () => {
        for (const p of cache.values()) disposeProgram(p);
        cache.clear();
        last = undefined;
      },
    },
  });
  return jitted;
};
