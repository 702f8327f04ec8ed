/**
 * Fusion of a jitted program's element-wise chains (see jit.ts): a run of
 * element-wise equations of one shape and dtype whose intermediate results
 * nobody else reads becomes one kernel, a single loop that reads each input
 * once and writes only the chain's result: no buffer per op, one pass over
 * memory instead of one per op. This file plans the chains; the backend
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
  type DType,
  type FusedChain,
  type Shape,
} from '../core/index.js';
import type { Equation, Slot } from './jit.js';

/** One fused chain: its equations (indices into the program's), one pass over `elements` values. */
export interface FusionGroup {
  /** Indices of its equations in the program, consecutive. */
  readonly eqns: readonly number[];
  /** Elements of the chain's result (and of each of its steps). */
  readonly elements: number;
}

/** A chain ready to run: the kernel over its inputs' buffers, its result's slot, its last equation. */
export interface FusedRun {
  /** The slots the chain reads (from before it: arguments, constants, earlier results). */
  readonly ins: readonly number[];
  /** The slot of the chain's result, the only one written. */
  readonly out: number;
  /** The index of the chain's last equation. */
  readonly last: number;
  /** Slots computed inside the chain and never materialized. */
  readonly internal: ReadonlySet<number>;
  /** The backend's compiled chain: the result's buffer from the buffers of `ins`. */
  readonly kernel: (bufs: readonly unknown[]) => unknown;
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

/** The chain [first..last] compiled by the backend, or undefined where it cannot. */
const compile = (p: FusionInput, first: number, last: number): FusedRun | undefined => {
  const eqns = p.eqns.slice(first, last + 1);
  const out = eqns[eqns.length - 1]!.outs[0]!;
  const { shape } = p.slots[out]!;
  const dtype = storageDType(p.backend, p.slots[out]!.dtype);
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
  const chain: FusedChain = { dtype, n, row: rows.size === 1 ? [...rows][0]! : n, inputs, ops };
  const kernel = p.backend.fuse?.(chain);
  if (kernel === undefined) return undefined;
  return { ins, out, last, internal: new Set([...opOf.keys()].filter((s) => s !== out)), kernel: kernel as FusedRun['kernel'] };
};

/**
 * The fusion plan of a program: maximal runs of fusible equations, cut so that
 * every intermediate is read only inside its chain, each compiled by the
 * backend. Undefined when nothing fuses.
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
  let i = 0;
  while (i < p.eqns.length) {
    const e = p.eqns[i]!;
    const o = e.kind === 'kernel' ? p.slots[e.outs[0]!] : undefined;
    if (o === undefined || !fusible(p, e, o.shape, storageDType(p.backend, o.dtype))) {
      i++;
      continue;
    }
    // Extend while fusible; remember the longest prefix whose intermediates stay inside it.
    let best = i,
      need = -1;
    for (let j = i; j < p.eqns.length && fusible(p, p.eqns[j]!, o.shape, storageDType(p.backend, o.dtype)); j++) {
      if (j > i) need = Math.max(need, lastRead.get(p.eqns[j - 1]!.outs[0]!) ?? -1);
      if (need <= j) best = j;
    }
    if (best > i) {
      const run = compile(p, i, best);
      if (run !== undefined) {
        runAt[i] = run;
        groups.push({ eqns: Array.from({ length: best - i + 1 }, (_, k) => i + k), elements: sizeOf(o.shape) });
        i = best + 1;
        continue;
      }
    }
    i++;
  }
  return groups.length === 0 ? undefined : { groups, runAt };
};
