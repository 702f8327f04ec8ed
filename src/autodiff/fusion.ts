/**
 * Fusion of a jitted program's element-wise chains (see jit.ts): a run of
 * element-wise equations of one shape and dtype whose intermediate results
 * nobody else reads becomes one kernel, a single loop that reads each input
 * once and writes only the chain's result: no buffer per op, one pass over
 * memory instead of one per op.
 *
 * Same bits as unfused: each op's expression is the host kernel's own
 * (kernels.ts: computed in float64, then rounded to the output's dtype), and a
 * float32 chain rounds after every op (`Math.fround`), as storing each
 * intermediate into a Float32Array did. The cpu backend's WebAssembly
 * overrides of add, mul, relu and reluGrad equal those host kernels bit for
 * bit (cpu/table.ts), so a fused step is the eager step to the bit.
 *
 * Where: the host backends (reference, cpu), whose buffers are typed arrays,
 * with the kernel emitted as JavaScript at trace time (`new Function`: V8
 * compiles the loop like the hand-written ones). Where code generation is
 * refused (a page whose Content-Security-Policy forbids it) or the backend is
 * gpujs, the program runs unfused. Not yet: WebAssembly emission (SIMD, both
 * threads) and one gpu.js shader per chain.
 */
import { isHostBackend, type Backend, type Data, type DType, type Shape } from '../core/index.js';
import type { Equation, Slot } from './jit.js';

/** One fused chain: its equations (indices into the program's), one pass over `elements` values. */
export interface FusionGroup {
  readonly eqns: readonly number[];
  readonly elements: number;
}

/** A chain ready to run: the kernel over its inputs' buffers, its result's slot, its last equation. */
export interface FusedRun {
  readonly ins: readonly number[];
  readonly out: number;
  readonly last: number;
  /** Slots computed inside the chain and never materialized. */
  readonly internal: ReadonlySet<number>;
  readonly kernel: (bufs: readonly unknown[]) => unknown;
}

/** The fusion groups of a program, and the runs by the index of their first equation. */
export interface FusionPlan {
  readonly groups: readonly FusionGroup[];
  readonly runAt: readonly (FusedRun | undefined)[];
}

/** What fusion reads of a program. */
export interface FusionInput {
  readonly backend: Backend;
  readonly slots: readonly Slot[];
  readonly eqns: readonly Equation[];
  readonly outputs: readonly number[];
}

/** Each fusible primitive's expression in its operands (JavaScript, float64), as its host kernel computes it. */
const expressions: Record<string, (a: readonly string[], params: unknown) => string | undefined> = {
  add: ([a, b]) => `(${a} + ${b})`,
  mul: ([a, b]) => `(${a} * ${b})`,
  neg: ([a]) => `(-${a})`,
  reciprocal: ([a]) => `(1 / ${a})`,
  exp: ([a]) => `Math.exp(${a})`,
  log: ([a]) => `Math.log(${a})`,
  sqrt: ([a]) => `Math.sqrt(${a})`,
  tanh: ([a]) => `Math.tanh(${a})`,
  // Split by sign so exp never overflows (kernels.ts).
  sigmoid: ([a]) => `(${a} >= 0 ? 1 / (1 + Math.exp(-${a})) : Math.exp(${a}) / (1 + Math.exp(${a})))`,
  relu: ([a]) => `(${a} <= 0 ? 0 : ${a})`,
  reluGrad: ([x, ct]) => `(${ct} * (${x} > 0 ? 1 : 0))`,
  select: ([c, a, b]) => `(${c} !== 0 ? ${a} : ${b})`,
  pow: ([a], params) => {
    const p = (params as { p: number }).p;
    return Number.isFinite(p) ? `(${a} ** ${String(p)})` : undefined;
  },
};

const same = (a: Shape, b: Shape): boolean => a.length === b.length && a.every((d, i) => d === b[i]);
const size = (s: Shape): number => s.reduce((p, d) => p * d, 1);

/**
 * How an input of shape `s` is read inside a loop over `out`: every element
 * ('full'), one value ('scalar'), or a row repeated over the leading axes
 * ('row': s is out's trailing axes, with leading ones dropped or 1). Other
 * broadcasts are not fused.
 */
const access = (s: Shape, out: Shape): 'full' | 'scalar' | 'row' | undefined => {
  if (same(s, out)) return 'full';
  const n = size(s);
  if (n === 1) return 'scalar';
  const lead = s.findIndex((d) => d !== 1);
  const tail = s.slice(lead);
  if (tail.length <= out.length && same(tail, out.slice(out.length - tail.length))) return 'row';
  return undefined;
};

/** Whether equation e can sit in a chain over `shape` and `dtype`. */
const fusible = (p: FusionInput, e: Equation, shape: Shape, dtype: DType): boolean => {
  if (e.kind !== 'kernel' || expressions[e.prim] === undefined) return false;
  const o = p.slots[e.outs[0]!]!;
  if (!same(o.shape, shape) || o.dtype !== dtype) return false;
  if (e.prim === 'pow' && expressions.pow!(['x'], e.params) === undefined) return false;
  return e.ins.every((s) => p.slots[s]!.dtype === dtype && access(p.slots[s]!.shape, shape) !== undefined);
};

/** The chain [s..e] as one kernel, or undefined where code cannot be generated. */
const compile = (p: FusionInput, first: number, last: number, alloc: (dtype: DType, n: number, zeroed: boolean) => Data): FusedRun | undefined => {
  const eqns = p.eqns.slice(first, last + 1);
  const out = eqns[eqns.length - 1]!.outs[0]!;
  const { shape, dtype } = p.slots[out]!;
  const n = size(shape);
  const produced = new Set(eqns.map((e) => e.outs[0]!));
  const ins: number[] = [];
  for (const e of eqns) for (const s of e.ins) if (!produced.has(s) && !ins.includes(s)) ins.push(s);
  const kinds = ins.map((s) => access(p.slots[s]!.shape, shape)!);
  // Rows: every row input repeats over one row length (the largest); a chain with rows of two lengths is cut.
  const rowLengths = new Set(ins.filter((_, k) => kinds[k] === 'row').map((s) => size(p.slots[s]!.shape)));
  if (rowLengths.size > 1) return undefined;
  const L = rowLengths.size === 1 ? [...rowLengths][0]! : n;
  const round = dtype === 'float32' ? (x: string) => `F(${x})` : (x: string) => x;
  const name = new Map<number, string>();
  const lines: string[] = [];
  for (const [k, s] of ins.entries()) name.set(s, kinds[k] === 'full' ? `i${k}[o + c]` : kinds[k] === 'row' ? `i${k}[c]` : `s${k}`);
  eqns.forEach((e, j) => {
    const v = `t${j}`;
    lines.push(`const ${v} = ${round(expressions[e.prim]!(e.ins.map((s) => name.get(s)!), e.params)!)};`);
    name.set(e.outs[0]!, v);
  });
  const body = [
    'const F = Math.fround;',
    ...ins.map((_, k) => `const i${k} = bufs[${k}];${kinds[k] === 'scalar' ? ` const s${k} = i${k}[0];` : ''}`),
    `const out = alloc(${JSON.stringify(dtype)}, ${n}, false);`,
    `for (let o = 0; o < ${n}; o += ${L}) {`,
    `  for (let c = 0; c < ${L}; c++) {`,
    ...lines.map((l) => `    ${l}`),
    `    out[o + c] = t${eqns.length - 1};`,
    '  }',
    '}',
    'return out;',
  ].join('\n');
  let kernel: (bufs: readonly unknown[], alloc: unknown) => unknown;
  try {
    kernel = new Function('bufs', 'alloc', body) as typeof kernel;
  } catch {
    return undefined; // code generation refused (Content-Security-Policy): run unfused
  }
  return { ins, out, last, internal: new Set([...produced].filter((s) => s !== out)), kernel: (bufs) => kernel(bufs, alloc) };
};

/**
 * The fusion plan of a program: maximal runs of fusible equations, cut so that
 * every intermediate is read only inside its chain, compiled where the backend
 * keeps its buffers in typed arrays. Undefined when nothing fuses.
 */
export const fuse = (p: FusionInput): FusionPlan | undefined => {
  const be = p.backend;
  if (!isHostBackend(be)) return undefined;
  const alloc = be.alloc.bind(be);
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
    if (o === undefined || !fusible(p, e, o.shape, o.dtype)) { i++; continue; }
    // Extend while fusible; remember the longest prefix whose intermediates stay inside it.
    let best = i, need = -1;
    for (let j = i; j < p.eqns.length && fusible(p, p.eqns[j]!, o.shape, o.dtype); j++) {
      if (j > i) need = Math.max(need, lastRead.get(p.eqns[j - 1]!.outs[0]!) ?? -1);
      if (need <= j) best = j;
    }
    if (best > i) {
      const run = compile(p, i, best, alloc);
      if (run !== undefined) {
        runAt[i] = run;
        groups.push({ eqns: Array.from({ length: best - i + 1 }, (_, k) => i + k), elements: size(o.shape) });
        i = best + 1;
        continue;
      }
    }
    i++;
  }
  return groups.length === 0 ? undefined : { groups, runAt };
};
