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
 * Anything else is refused with the path to it. No strings are built here:
 * given the last call's tokens (`against`), the walk compares instead of
 * writing and returns undefined at the first difference; only a new
 * signature joins its tokens into a cache key.
 */
const flatten = (who: string, args: readonly unknown[], against?: readonly unknown[]): Flat | undefined => {
  const st: Walk = { who, tokens: against === undefined ? [] : undefined, against, at: 0, tensors: [], keys: [], path: [] };
  for (let i = 0; i < args.length; i++) {
    st.path.push(i);
    if (!walk(st, args[i])) return undefined;
    st.path.pop();
  }
  if (against !== undefined && st.at !== against.length) return undefined;
  return { tokens: against ?? st.tokens!, tensors: st.tensors, keys: st.keys };
};

/** flatten's walk: module functions over one state (no closures per call: a replay's signature check allocates little). */
interface Walk {
  readonly who: string;
  /** The signature being written, or undefined when comparing `against` a known one. */
  readonly tokens: unknown[] | undefined;
  readonly against: readonly unknown[] | undefined;
  at: number;
  readonly tensors: Tensor[];
  readonly keys: Key[];
  /** Where the walk is (argument index, then keys and indices), for the error only. */
  readonly path: (string | number)[];
}
/** Writes a token, or compares it with the known signature's next one. */
const emit = (st: Walk, t: unknown): boolean => {
  if (st.tokens !== undefined) {
    st.tokens.push(t);
    return true;
  }
  return Object.is(st.against![st.at++], t);
};
const walk = (st: Walk, v: unknown): boolean => {
  if (v instanceof Tensor) {
    st.tensors.push(v);
    if (!(emit(st, TENSOR) && emit(st, v.dtype) && emit(st, backendId(v.backend)) && emit(st, v.shape.length))) return false;
    for (const d of v.shape) if (!emit(st, d)) return false;
    return true;
  }
  if (v instanceof Key) {
    // Dynamic: draws from it (or keys derived from it) are redone each call.
    st.keys.push(v);
    return emit(st, KEY);
  }
  if (Array.isArray(v)) {
    if (!(emit(st, ARRAY) && emit(st, v.length))) return false;
    for (let i = 0; i < v.length; i++) {
      st.path.push(i);
      if (!walk(st, v[i])) return false;
      st.path.pop();
    }
    return true;
  }
  if (isPlainObject(v)) {
    const names = Object.keys(v).sort();
    if (!(emit(st, RECORD) && emit(st, names.length))) return false;
    for (const k of names) if (!emit(st, k)) return false;
    for (const k of names) {
      st.path.push(`.${k}`);
      if (!walk(st, v[k])) return false;
      st.path.pop();
    }
    return true;
  }
  if (v === undefined || v === null || typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean') return emit(st, typeof v) && emit(st, v);
  if (st.tokens === undefined) return false; // the error comes from the walk that writes the signature
  const what = typeof v === 'object' ? (v.constructor?.name ?? 'object') : typeof v;
  const where = st.path.map((p, i) => (i === 0 ? `argument ${p}` : typeof p === 'number' ? `[${p}]` : p)).join('');
  throw new TypeError(
    `${st.who}: ${where} is a ${what}; a jitted function takes tensors (traced), Keys (draws redone each call) and numbers, strings or booleans (static: each value is its own program). ` +
      'Close over it instead (it is then frozen into the program), or call the function without jit.',
  );
};
/** An argument list's signature (see flatten) and its dynamic leaves in order. */
interface Flat {
  readonly tokens: readonly unknown[];
  readonly tensors: Tensor[];
  readonly keys: Key[];
}
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
    (g, gi) =>
      `  fused ${gi}: ${g.eqns.length} ops, ${g.elements} elements, one pass (${g.eqns.map((e) => p.eqns[e]!.prim).join(' → ')}), ` +
      `${g.writes} ${g.writes === 1 ? 'result' : 'results'} written${g.sums ? ' (the sum computed in the pass)' : ''}`,
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

/** One replay's state: each slot's buffer (undefined once freed), and the tensors host draws made, by slot. */
interface Frame {
  readonly bufs: unknown[];
  readonly drawn: Map<number, Tensor> | undefined;
  readonly keys: readonly Key[];
}

/** What a replay runs, made once per program: one closure per equation or fused chain, with its frees. */
interface Replayer {
  readonly steps: readonly ((fr: Frame) => void)[];
  readonly draws: boolean;
  /** Per result: where its buffer comes from (an argument, a constant, or this replay), and the first result sharing it. */
  readonly results: readonly { readonly from: 'arg' | 'const' | 'buf'; readonly index: number; readonly first: number }[];
}

const replayers = new WeakMap<Lowered, Replayer>();

const replayerOf = (p: Lowered): Replayer => {
  const known = replayers.get(p);
  if (known !== undefined) return known;
  const be = p.backend;
  const kernels = be.kernels as unknown as Record<string, KernelFn>;
  const fusedKernels = be.fused as unknown as Record<string, FusedFn>;
  // Kernels see storage dtypes (int32 and bool live in float storage: see storageDType), as bind gives them.
  const stored = p.slots.map((slot) => {
    const dtype = storageDType(be, slot.dtype);
    return dtype === slot.dtype ? slot : { shape: slot.shape, dtype };
  });
  const draws = p.eqns.some((e) => e.kind === 'host');
  /** Gives back a buffer at its last use: a host draw's tensor is disposed, any other buffer freed. */
  const release = (fr: Frame, r: number): void => {
    const t = fr.drawn?.get(r);
    if (t === undefined) be.free(fr.bufs[r]);
    else {
      t.dispose();
      fr.drawn!.delete(r);
    }
    fr.bufs[r] = undefined;
  };
  const freeing = (free: readonly number[]) =>
    free.length === 0
      ? () => {}
      : (fr: Frame) => {
          for (const r of free) release(fr, r);
        };
  const steps: ((fr: Frame) => void)[] = [];
  for (let i = 0; i < p.eqns.length; i++) {
    const run = p.fusion?.runAt[i];
    if (run !== undefined) {
      // A fused chain: one kernel for its equations, only the values read after it materialized.
      const free = freeing(p.freeAfter.slice(i, run.last + 1).flatMap((f) => f.filter((r) => !run.internal.has(r))));
      const { ins, outs, kernel } = run;
      steps.push((fr) => {
        const res = kernel(ins.map((s) => fr.bufs[s]));
        for (let k = 0; k < outs.length; k++) fr.bufs[outs[k]!] = res[k];
        free(fr);
      });
      i = run.last;
      continue;
    }
    const e = p.eqns[i]!;
    const free = freeing(p.freeAfter[i]!);
    const [out] = e.outs as [number];
    if (e.kind === 'view') {
      const [x] = e.ins as [number];
      steps.push((fr) => {
        fr.bufs[out] = fr.bufs[x];
        free(fr);
      });
    } else if (e.kind === 'kernel') {
      const fn = kernels[e.prim]!,
        { ins, params } = e,
        outSlot = stored[out]!,
        types = ins.map((s) => stored[s]!);
      steps.push((fr) => {
        const operands = new Array<{ buf: unknown; shape: Shape; dtype: DType }>(ins.length);
        for (let k = 0; k < ins.length; k++) operands[k] = { buf: fr.bufs[ins[k]!], shape: types[k]!.shape, dtype: types[k]!.dtype };
        fr.bufs[out] = fn(operands, params, outSlot);
        free(fr);
      });
    } else if (e.kind === 'host') {
      const make = e.params as (keys: readonly object[]) => Tensor;
      steps.push((fr) => {
        const t = make(fr.keys);
        fr.drawn!.set(out, t);
        fr.bufs[out] = internal.storageOf(t).buf;
        free(fr);
      });
    } else {
      const fn = fusedKernels[e.prim]!,
        { ins, outs, params } = e;
      steps.push((fr) => {
        const res = fn(...ins.map((s) => ({ buf: fr.bufs[s], shape: stored[s]!.shape, dtype: stored[s]!.dtype })), params);
        for (let k = 0; k < outs.length; k++) fr.bufs[outs[k]!] = res[k];
        free(fr);
      });
    }
  }
  const results = p.outputs.map((o) => {
    const r = p.root[o]!;
    const c = p.constSlots.indexOf(r);
    const from = r < p.args ? ('arg' as const) : c >= 0 ? ('const' as const) : ('buf' as const);
    return { from, index: from === 'const' ? c : r, first: p.outputs.findIndex((q) => p.root[q] === r) };
  });
  const made = { steps, draws, results };
  replayers.set(p, made);
  return made;
};

const replay = (p: Lowered, args: readonly Tensor[], keys: readonly Key[]): unknown => {
  const { steps, draws, results } = replayerOf(p);
  const fr: Frame = { bufs: new Array<unknown>(p.slots.length), drawn: draws ? new Map() : undefined, keys };
  const { bufs } = fr;
  for (let i = 0; i < p.args; i++) bufs[i] = internal.storageOf(args[i]!).buf;
  for (let i = 0; i < p.consts.length; i++) bufs[p.constSlots[i]!] = internal.storageOf(p.consts[i]!).buf;
  try {
    for (const step of steps) step(fr);
  } catch (err) {
    // Give back what this replay allocated and will not return: every buffer still held but the arguments' and constants'.
    const consts = new Set(p.constSlots);
    for (let s = p.args; s < bufs.length; s++)
      if (p.root[s] === s && bufs[s] !== undefined && !consts.has(s) && fr.drawn?.has(s) !== true) p.backend.free(bufs[s]);
    for (const t of fr.drawn?.values() ?? []) t.dispose();
    throw err;
  }
  // Results: one storage per buffer; arguments and constants come back as views of theirs.
  const made = new Array<Tensor>(results.length);
  for (let k = 0; k < results.length; k++) {
    const { from, index, first } = results[k]!,
      slot = p.slots[p.outputs[k]!]!;
    if (from === 'arg') made[k] = internal.share(args[index]!, slot.shape);
    else if (from === 'const') made[k] = internal.share(p.consts[index]!, slot.shape);
    else {
      const d = fr.drawn?.get(index);
      if (d !== undefined) made[k] = internal.share(d, slot.shape);
      else if (first < k) made[k] = internal.share(made[first]!, slot.shape);
      else made[k] = internal.wrap(new Storage(p.backend, bufs[index]), slot.shape, slot.dtype);
    }
  }
  if (fr.drawn !== undefined) for (const t of fr.drawn.values()) t.dispose(); // results share their storage
  if (p.template instanceof Tensor) return made[0];
  let k = 0;
  return refill(p.template, () => made[k++]!);
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
    // The last call's signature first (a training step's every call), compared leaf by leaf; then the cache.
    const same = last === undefined ? undefined : flatten(who, args, last.tokens);
    const { tokens, tensors, keys } = same ?? flatten(who, args)!;
    for (const t of tensors) {
      if (t.trace !== undefined) {
        // Traced by an outer transformation (or an enclosing jit): run f where it is.
        inlined++;
        return f(...args);
      }
    }
    if (same !== undefined) return replay(last!.program, tensors, keys) as R;
    const r = lookup(args, tokens, tensors, keys);
    return (r.result !== undefined ? r.result : replay(r.program!, tensors, keys)) as R;
  };

  const jitted = call as Jitted<A, R>;
  Object.defineProperties(jitted, {
    lower: {
      value: (...args: A): Program => {
        const { tokens, tensors, keys } = flatten(who, args)!;
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
