/**
 * Fused element-wise chains: what a backend compiles when `jit` fuses a run of
 * element-wise primitives into one kernel (see src/autodiff/fusion.ts), and
 * the host backends' implementation, a loop generated as JavaScript.
 *
 * Same bits as unfused: each op is its host kernel's expression (kernels.ts,
 * kernels-nd.ts: computed in float64, then stored in the output's dtype), and
 * a float32 chain rounds after every op (`Math.fround`), as storing each
 * intermediate in a Float32Array did.
 */
import { CHAIN_IMPORTS } from './backends/cpu-protocol.mjs';
import type { Alloc } from './kernels.js';
import type { Data, DType } from './primitives.js';

/** The primitives a chain may hold. */
export type ChainPrimitive =
  | 'add'
  | 'mul'
  | 'neg'
  | 'reciprocal'
  | 'exp'
  | 'log'
  | 'sqrt'
  | 'tanh'
  | 'sigmoid'
  | 'sin'
  | 'cos'
  | 'relu'
  | 'reluGrad'
  | 'select'
  | 'pow';

/**
 * How an input is read over the chain's result: every element ('full'), one
 * value ('scalar'), or `row` values repeated over the leading axes ('row').
 */
export type ChainAccess = 'full' | 'row' | 'scalar';

/** One op of a chain: its primitive, its operands (k < inputs: input k; else op k − inputs), its parameters. */
export interface ChainOp {
  readonly prim: ChainPrimitive;
  readonly args: readonly number[];
  readonly params: unknown;
}

/**
 * A sum over the axes around one kept block of a chain's shape (every axis,
 * the leading ones, the trailing ones, or all but a middle block such as
 * [N, C, H, W] summed to C): element k of the summed op adds into result
 * `⌊k / inner⌋ mod mid`, in element order, in float64, rounded once to the
 * chain's dtype: the order and precision of every backend's `sum` kernel
 * (kernels.ts), so a fused sum is the same bits as the unfused one.
 */
export interface ChainSum {
  /** The op whose values are summed (an index into `ops`). */
  readonly of: number;
  /** Elements of the kept block's trailing axes (the reduced ones after it). */
  readonly inner: number;
  /** Elements of the kept block: the sum's result's length. */
  readonly mid: number;
}

/** A chain of element-wise ops over one shape and dtype, to compile into one kernel. */
export interface FusedChain {
  readonly dtype: DType;
  /** Elements of each op's value. */
  readonly n: number;
  /** The length of the rows 'row' inputs repeat (n when there is none). */
  readonly row: number;
  readonly inputs: readonly ChainAccess[];
  /** In order; op j's operands are inputs and earlier ops. */
  readonly ops: readonly ChainOp[];
  /** The ops whose values are written (n elements each), in the order of the kernel's results. */
  readonly outputs: readonly number[];
  /** A sum of one op's values, the kernel's last result; absent when the chain only maps. */
  readonly sum?: ChainSum;
}

/** A compiled chain: its results' buffers (`outputs`' values, then the sum's) from the inputs' buffers. */
export type ChainKernel<B> = (inputs: readonly B[]) => readonly B[];

/** Each chain primitive's expression in its operands (JavaScript, float64), as its host kernel computes it. */
export const chainExpressions: { readonly [P in ChainPrimitive]: (a: readonly string[], params: unknown) => string } = {
  add: ([a, b]) => `(${a} + ${b})`,
  mul: ([a, b]) => `(${a} * ${b})`,
  neg: ([a]) => `(-${a})`,
  reciprocal: ([a]) => `(1 / ${a})`,
  exp: ([a]) => `Math.exp(${a})`,
  log: ([a]) => `Math.log(${a})`,
  sqrt: ([a]) => `Math.sqrt(${a})`,
  tanh: ([a]) => `Math.tanh(${a})`,
  sin: ([a]) => `Math.sin(${a})`,
  cos: ([a]) => `Math.cos(${a})`,
  // The one JavaScript sigmoid the cpu chains import too (split by sign as kernels.ts's, so exp never overflows).
  sigmoid: ([a]) => `M.sigmoid(${a})`,
  relu: ([a]) => `(${a} <= 0 ? 0 : ${a})`,
  reluGrad: ([x, ct]) => `(${ct} * (${x} > 0 ? 1 : 0))`,
  select: ([c, a, b]) => `(${c} !== 0 ? ${a} : ${b})`,
  pow: ([a], params) => `(${a} ** ${String((params as { p: number }).p)})`,
};

/** Whether `prim` (with `params`) can join a chain: pow only with a finite exponent. */
export const isChainable = (prim: string, params: unknown): prim is ChainPrimitive =>
  prim in chainExpressions && (prim !== 'pow' || Number.isFinite((params as { p: number }).p));

/**
 * The chain as a JavaScript loop over typed arrays, its output from `alloc`;
 * undefined where code generation is refused (a page whose
 * Content-Security-Policy forbids `new Function`).
 */
export const hostChain = (alloc: Alloc, chain: FusedChain): ChainKernel<Data> | undefined => {
  const { dtype, n, row: L, inputs, ops, outputs, sum } = chain;
  const round = dtype === 'float32' ? (x: string) => `F(${x})` : (x: string) => x;
  const ref = (k: number): string => {
    if (k >= inputs.length) return `t${k - inputs.length}`;
    return inputs[k] === 'full' ? `i${k}[o + c]` : inputs[k] === 'row' ? `i${k}[c]` : `s${k}`;
  };
  // The sum's slot for element o + c: q counts elements within a run of `inner`, m the run's slot in [0, mid).
  const summing =
    sum === undefined
      ? []
      : [`    acc[m] += t${sum.of};`, ...(sum.mid === 1 ? [] : [`    if (++q === ${sum.inner}) { q = 0; if (++m === ${sum.mid}) m = 0; }`])];
  const body = [
    'const F = Math.fround;',
    ...inputs.map((kind, k) => `const i${k} = bufs[${k}];${kind === 'scalar' ? ` const s${k} = i${k}[0];` : ''}`),
    ...outputs.map((_, r) => `const out${r} = alloc(${JSON.stringify(dtype)}, ${n}, false);`),
    ...(sum === undefined ? [] : [`const acc = new Float64Array(${sum.mid});`, 'let q = 0, m = 0;']),
    `for (let o = 0; o < ${n}; o += ${L}) {`,
    `  for (let c = 0; c < ${L}; c++) {`,
    ...ops.map((op, j) => `    const t${j} = ${round(chainExpressions[op.prim](op.args.map(ref), op.params))};`),
    ...outputs.map((j, r) => `    out${r}[o + c] = t${j};`),
    ...summing,
    '  }',
    '}',
    ...(sum === undefined ? [] : [`const total = alloc(${JSON.stringify(dtype)}, ${sum.mid}, false);`, 'total.set(acc);']),
    `return [${[...outputs.map((_, r) => `out${r}`), ...(sum === undefined ? [] : ['total'])].join(', ')}];`,
  ].join('\n');
  try {
    const kernel = new Function('bufs', 'alloc', 'M', body) as (bufs: readonly Data[], alloc: Alloc, m: typeof CHAIN_IMPORTS) => Data[];
    return (bufs) => kernel(bufs, alloc, CHAIN_IMPORTS);
  } catch {
    return undefined;
  }
};
