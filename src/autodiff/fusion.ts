/**
 * Fusion of a jitted program's element-wise chains (see jit.ts): a run of
 * element-wise equations of one shape and dtype, and a sum of one of their
 * values, becomes one kernel, a single loop that reads each input once and
 * writes only the values read after the chain (and the sum): no buffer per
 * intermediate, one pass over memory instead of one per op. A backend may
 * decline a chain with several results or a sum (gpujs's shaders write one
 * texture; the cpu backend's two threads cannot share a sum's order): then the
 * part before the sum, or the single-result runs inside it, are fused instead.
 * This file plans the chains; the backend
 * compiles each (`Backend.fuse`: src/core/chains.ts for the host backends'
 * JavaScript loops, src/core/backends/cpu/chains.ts for the cpu backend's
 * WebAssembly, one shader in src/core/backends/gpujs.ts), so the results are
 * the unfused kernels' (each backend's compiler says how). A backend without
 * `fuse` runs programs unfused.
 */
import {
  isChainable,
  sameShape,
  sizeOf,
  storageDType,
  type Backend,
  type ChainAccess,
  type ChainOp,
  type ChainSum,
  type DType,
  type FusedChain,
  type Shape,
} from '../core/index.js';
import type { Equation, Slot } from './jit.js';

/** One fused chain: its equations (indices into the program's), one pass over `elements` values. */
export interface FusionGroup {
  /** Indices of its equations in the program, consecutive. */
  readonly eqns: readonly number[];
  /** Elements of each of its steps. */
  readonly elements: number;
  /** Values it writes: those read after it (and the sum's result, where it has one). */
  readonly writes: number;
  /** Whether one of its equations is a sum computed in the same pass. */
  readonly sums: boolean;
}

/** A chain ready to run: the kernel over its inputs' buffers, the slots it writes, its last equation. */
export interface FusedRun {
  /** The slots the chain reads (from before it: arguments, constants, earlier results). */
  readonly ins: readonly number[];
  /** The slots the chain writes, in the order of the kernel's results. */
  readonly outs: readonly number[];
  /** The index of the chain's last equation. */
  readonly last: number;
  /** Slots computed inside the chain and never materialized. */
  readonly internal: ReadonlySet<number>;
  /** The backend's compiled chain: the buffers of `outs` from the buffers of `ins`. */
  readonly kernel: (bufs: readonly unknown[]) => readonly unknown[];
}

/** The fusion groups of a program, and the runs by the index of their first equation. */
export interface FusionPlan {
  /** The chains, in program order. */
  readonly groups: readonly FusionGroup[];
  /** Per equation index, the chain that starts there (undefined elsewhere). */
  readonly runAt: readonly (FusedRun | undefined)[];
}

/** What fusion reads of a program. */
export interface FusionInput {
  /** The backend that compiles the chains. */
  readonly backend: Backend;
  /** Every value's shape and dtype. */
  readonly slots: readonly Slot[];
  /** The equations, in order. */
  readonly eqns: readonly Equation[];
  /** The program's results (never internal to a chain). */
  readonly outputs: readonly number[];
}

/**
 * How an input of shape `s` is read inside a loop over `out`: every element
 * ('full'), one value ('scalar'), or a row repeated over the leading axes
 * ('row': s is out's trailing axes, with leading ones dropped or 1). Other
 * broadcasts are not fused.
 */
const access = (s: Shape, out: Shape): ChainAccess | undefined => {
  if (sameShape(s, out)) return 'full';
  const n = sizeOf(s);
  if (n === 1) return 'scalar';
  const lead = s.findIndex((d) => d !== 1);
  const tail = s.slice(lead);
  if (tail.length <= out.length && sameShape(tail, out.slice(out.length - tail.length))) return 'row';
  return undefined;
};

/** Whether equation e can sit in a chain over `shape` and (storage) `dtype`: chains see the storage dtypes kernels see. */
const fusible = (p: FusionInput, e: Equation, shape: Shape, dtype: DType): boolean => {
  if (e.kind !== 'kernel' || !isChainable(e.prim, e.params)) return false;
  const o = p.slots[e.outs[0]!]!;
  if (!sameShape(o.shape, shape) || storageDType(p.backend, o.dtype) !== dtype) return false;
  return e.ins.every((s) => storageDType(p.backend, p.slots[s]!.dtype) === dtype && access(p.slots[s]!.shape, shape) !== undefined);
};

/**
 * A sum of a value of `shape` that a chain can compute in its pass: the kept
 * axes one block [a, b) (possibly empty), so element k adds into
 * ⌊k / inner⌋ mod mid (see ChainSum); undefined for any other sum.
 */
const sumPattern = (p: FusionInput, e: Equation, shape: Shape, dtype: DType): Omit<ChainSum, 'of'> | undefined => {
  // The sum's result is stored as the chain's values are (a count of bools is int32, stored apart from its float32 chain).
  if (e.kind !== 'kernel' || e.prim !== 'sum' || storageDType(p.backend, p.slots[e.outs[0]!]!.dtype) !== dtype) return undefined;
  const axes = (e.params as { axes: readonly number[] }).axes;
  if (axes.length === 0) return undefined;
  const kept = shape.map((_, ax) => ax).filter((ax) => !axes.includes(ax));
  if (kept.some((ax, j) => j > 0 && ax !== kept[j - 1]! + 1)) return undefined;
  const a = kept[0] ?? shape.length,
    b = kept.length === 0 ? shape.length : kept[kept.length - 1]! + 1;
  return { inner: sizeOf(shape.slice(b)), mid: sizeOf(shape.slice(a, b)) };
};

/**
 * Equations [first..last] as one kernel writing every value read after `last`
 * (and the program's results), with equation `sumAt` (or none: −1) the sum
 * computed in the same pass; compiled by the backend, or undefined where it
 * declines. `oneResult`: only as a chain whose last value is its one result.
 */
const compile = (
  p: FusionInput,
  lastRead: ReadonlyMap<number, number>,
  first: number,
  last: number,
  sumAt: number,
  oneResult: boolean,
): FusedRun | undefined => {
  const eqns = p.eqns.slice(first, last + 1).filter((_, k) => first + k !== sumAt);
  const sumEq = sumAt >= 0 ? p.eqns[sumAt]! : undefined;
  const { shape } = p.slots[eqns[0]!.outs[0]!]!;
  const dtype = storageDType(p.backend, p.slots[eqns[0]!.outs[0]!]!.dtype);
  const n = sizeOf(shape);
  const opOf = new Map(eqns.map((e, j) => [e.outs[0]!, j] as const));
  const ins: number[] = [];
  for (const e of eqns) for (const s of e.ins) if (!opOf.has(s) && !ins.includes(s)) ins.push(s);
  const inputs = ins.map((s) => access(p.slots[s]!.shape, shape)!);
  // Rows: every row input repeats over one row length; a chain with rows of two lengths is not fused.
  const rows = new Set(ins.filter((_, k) => inputs[k] === 'row').map((s) => sizeOf(p.slots[s]!.shape)));
  if (rows.size > 1) return undefined;
  const ops: ChainOp[] = eqns.map((e) => ({
    prim: e.prim as ChainOp['prim'],
    args: e.ins.map((s) => (opOf.has(s) ? ins.length + opOf.get(s)! : ins.indexOf(s))),
    params: e.params,
  }));
  // Written: the values read after the chain (its sum reads inside it).
  const written = [...opOf.keys()].filter((s) => (lastRead.get(s) ?? -1) > last);
  if (oneResult && (written.length !== 1 || written[0] !== eqns[eqns.length - 1]!.outs[0])) return undefined;
  const sum = sumEq === undefined ? undefined : { of: opOf.get(sumEq.ins[0]!)!, ...sumPattern(p, sumEq, shape, dtype)! };
  const chain: FusedChain = {
    dtype,
    n,
    row: rows.size === 1 ? [...rows][0]! : n,
    inputs,
    ops,
    outputs: written.map((s) => opOf.get(s)!),
    ...(sum === undefined ? {} : { sum }),
  };
  const kernel = p.backend.fuse?.(chain);
  if (kernel === undefined) return undefined;
  const outs = sumEq === undefined ? written : [...written, sumEq.outs[0]!];
  return { ins, outs, last, internal: new Set([...opOf.keys()].filter((s) => !written.includes(s))), kernel: kernel as FusedRun['kernel'] };
};

/**
 * The fusion plan of a program: maximal runs of fusible equations (with at
 * most one sum of their values, which no later one of them reads), each
 * compiled by the backend; where it declines, the run up to its sum, else the run's longest single-result
 * prefix whose intermediates stay inside it (as a backend that writes one
 * buffer a kernel can run). Undefined when nothing fuses.
 */
export const fuse = (p: FusionInput): FusionPlan | undefined => {
  if (p.backend.fuse === undefined) return undefined;
  // Where each slot is read last (Infinity: a result of the program).
  const lastRead = new Map<number, number>();
  p.eqns.forEach((e, i) => {
    for (const s of e.ins) lastRead.set(s, i);
  });
  for (const o of p.outputs) lastRead.set(o, Infinity);
  const groups: FusionGroup[] = [];
  const runAt: (FusedRun | undefined)[] = new Array(p.eqns.length).fill(undefined);
  const take = (i: number, run: FusedRun, sums: boolean) => {
    runAt[i] = run;
    const eqns = Array.from({ length: run.last - i + 1 }, (_, k) => i + k);
    groups.push({ eqns, elements: sizeOf(p.slots[p.eqns[i]!.outs[0]!]!.shape), writes: run.outs.length, sums });
    return run.last + 1;
  };
  let i = 0;
  while (i < p.eqns.length) {
    const e = p.eqns[i]!;
    const o = e.kind === 'kernel' ? p.slots[e.outs[0]!] : undefined;
    const dtype = o === undefined ? undefined : storageDType(p.backend, o.dtype);
    if (o === undefined || dtype === undefined || !fusible(p, e, o.shape, dtype)) {
      i++;
      continue;
    }
    // The run: fusible equations, and at most one sum of their values that later ones do not read.
    const inRun = new Set<number>();
    let end = i,
      sumAt = -1;
    for (; end < p.eqns.length; end++) {
      const q = p.eqns[end]!;
      if (fusible(p, q, o.shape, dtype) && (sumAt < 0 || !q.ins.includes(p.eqns[sumAt]!.outs[0]!))) inRun.add(q.outs[0]!);
      else if (sumAt < 0 && inRun.has(q.ins[0]!) && sumPattern(p, q, o.shape, dtype) !== undefined) sumAt = end;
      else break;
    }
    const last = end - 1;
    const run =
      (last > i ? compile(p, lastRead, i, last, sumAt, false) : undefined) ?? (sumAt > i + 1 ? compile(p, lastRead, i, sumAt - 1, -1, false) : undefined);
    if (run !== undefined) {
      i = take(i, run, run.last === last && sumAt >= 0);
      continue;
    }
    const mapEnd = sumAt >= 0 ? sumAt : end;
    // Single-result chains: the longest prefix whose intermediates are read only inside it.
    let best = i,
      need = -1;
    for (let j = i; j < mapEnd; j++) {
      if (j > i) need = Math.max(need, lastRead.get(p.eqns[j - 1]!.outs[0]!) ?? -1);
      if (need <= j) best = j;
    }
    const single = best > i ? compile(p, lastRead, i, best, -1, true) : undefined;
    i = single !== undefined ? take(i, single, false) : i + 1;
  }
  return groups.length === 0 ? undefined : { groups, runAt };
};
