/**
 * jit's fused element-wise chains on the cpu backend: a WebAssembly module
 * emitted at trace time, byte by byte (no toolchain shipped: the format's few
 * instructions a chain needs are encoded here), over the backend's kernel
 * memory. One loop reads each input once and writes the result: four lanes at
 * a time (SIMD) where every op has a SIMD form, one element at a time where an
 * op calls out to JavaScript (exp, log, tanh, sigmoid, pow: the host kernels'
 * own `Math` functions).
 *
 * Same bits as the host kernels (and so as the unfused cpu kernels): float32
 * add, mul, negation, division and square root are correctly rounded in
 * WebAssembly as in JavaScript's float64-then-store; relu, its gradient and
 * select are comparisons and selections with the host kernels' NaN and −0
 * cases (`x <= 0 ? 0 : x`, `ct · (x > 0 ? 1 : 0)`, `c ≠ 0 ? a : b`); the
 * transcendental ops run in float64 in JavaScript and round once, as stored.
 *
 * Used for float32 chains of at least MIN_KERNEL_MEMORY_BYTES whose full-size
 * inputs and output are in the kernel memory (rows are staged there, scalars
 * passed as values); anything else runs the host chain (chains.ts). One
 * thread: the worker runs only the kernels compiled into the backend.
 */
import type { ChainKernel, ChainPrimitive, FusedChain } from '../../chains.js';
import type { Data } from '../../primitives.js';
import { MAX_PAGES, MIN_KERNEL_MEMORY_BYTES, type CpuMemory } from './memory.js';

// --- encoding -------------------------------------------------------------------

const uleb = (n: number): number[] => {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
};
const sleb = (n: number): number[] => {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) { out.push(b); return out; }
    out.push(b | 0x80);
  }
};
const f32c = (v: number): number[] => [...new Uint8Array(Float32Array.of(v).buffer)];
const f64c = (v: number): number[] => [...new Uint8Array(Float64Array.of(v).buffer)];
const str = (s: string): number[] => [...uleb(s.length), ...[...s].map((c) => c.charCodeAt(0))];
const vec = (items: readonly number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];

const I32 = 0x7f, F32 = 0x7d, F64 = 0x7c, V128 = 0x7b;
const op = {
  block: 0x02, loop: 0x03, br: 0x0c, brIf: 0x0d, end: 0x0b, call: 0x10, select: 0x1b,
  get: 0x20, set: 0x21, tee: 0x22, f32load: 0x2a, f32store: 0x38, i32const: 0x41, f32const: 0x43, f64const: 0x44,
  i32geu: 0x4f, i32gtu: 0x4b, i32add: 0x6a, i32shl: 0x74,
  f32ne: 0x5c, f32gt: 0x5e, f32le: 0x5f, f32neg: 0x8c, f32sqrt: 0x91, f32add: 0x92, f32mul: 0x94, f32div: 0x95,
  demote: 0xb6, promote: 0xbb,
} as const;
const simd = (code: number): number[] => [0xfd, ...uleb(code)];
const v = {
  load: simd(0x00), store: simd(0x0b), splat: simd(0x13), ne: simd(0x42), gt: simd(0x44), le: simd(0x45), bitselect: simd(0x52),
  neg: simd(0xe1), sqrt: simd(0xe3), add: simd(0xe4), mul: simd(0xe6), div: simd(0xe7),
};
const memarg = (align: number): number[] => [align, 0];

/** The ops with a four-lane form; the others call JavaScript one element at a time. */
const lanewise: ReadonlySet<ChainPrimitive> = new Set(['add', 'mul', 'neg', 'reciprocal', 'sqrt', 'relu', 'reluGrad', 'select']);
/** The imported JavaScript functions (float64), in import order: the host kernels' expressions. */
const imports: readonly { readonly name: ChainPrimitive; readonly arity: 1 | 2; readonly fn: (...a: number[]) => number }[] = [
  { name: 'exp', arity: 1, fn: Math.exp },
  { name: 'log', arity: 1, fn: Math.log },
  { name: 'tanh', arity: 1, fn: Math.tanh },
  { name: 'sigmoid', arity: 1, fn: (x) => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x))) },
  { name: 'pow', arity: 2, fn: (x, p) => x ** p },
];

/** The module's bytes: `run(inputs…, out)` over the chain, inputs as byte offsets (scalars as values). */
const emit = (chain: FusedChain): Uint8Array<ArrayBuffer> => {
  const { n, row: L, inputs, ops } = chain;
  const lanes = ops.every((o) => lanewise.has(o.prim));
  const nIn = inputs.length;
  // Locals after the parameters (inputs, out): o, c, at (the byte offset of element o + c), then per input and per op a scalar and a vector.
  const OUT = nIn, O = nIn + 1, C = nIn + 2, AT = nIn + 3;
  const sIn = (k: number) => AT + 1 + k, vIn = (k: number) => AT + 1 + nIn + k;
  const sOp = (j: number) => AT + 1 + 2 * nIn + j, vOp = (j: number) => AT + 1 + 2 * nIn + ops.length + j;
  const locals = [[3, I32], [nIn, F32], [nIn, V128], [ops.length, F32], [ops.length, V128]].filter(([count]) => count! > 0);
  const get = (i: number) => [op.get, ...uleb(i)], set = (i: number) => [op.set, ...uleb(i)];
  const ref = (k: number, lane: boolean) => (k < nIn ? get(lane ? vIn(k) : sIn(k)) : get(lane ? vOp(k - nIn) : sOp(k - nIn)));
  const importIndex = (p: ChainPrimitive) => imports.findIndex((im) => im.name === p);

  /** Reads each input into its local for element o + c (four of them in lanes). */
  const loads = (lane: boolean): number[] => inputs.flatMap((kind, k) => {
    if (kind === 'scalar') return lane ? [] : [...get(k), ...set(sIn(k))];
    const addr = kind === 'full' ? [...get(k), ...get(AT), op.i32add] : [...get(k), ...get(C), op.i32const, 2, op.i32shl, op.i32add];
    return lane ? [...addr, ...v.load, ...memarg(4), ...set(vIn(k))] : [...addr, op.f32load, ...memarg(2), ...set(sIn(k))];
  });
  const zero = (lane: boolean) => (lane ? [op.f32const, ...f32c(0), ...v.splat] : [op.f32const, ...f32c(0)]);
  const one = (lane: boolean) => (lane ? [op.f32const, ...f32c(1), ...v.splat] : [op.f32const, ...f32c(1)]);
  /** Each op's value into its local. */
  const compute = (lane: boolean): number[] => ops.flatMap((o, j) => {
    const a = o.args.map((k) => ref(k, lane));
    let code: number[];
    switch (o.prim) {
      case 'add': code = [...a[0]!, ...a[1]!, ...(lane ? v.add : [op.f32add])]; break;
      case 'mul': code = [...a[0]!, ...a[1]!, ...(lane ? v.mul : [op.f32mul])]; break;
      case 'neg': code = [...a[0]!, ...(lane ? v.neg : [op.f32neg])]; break;
      case 'reciprocal': code = [...one(lane), ...a[0]!, ...(lane ? v.div : [op.f32div])]; break;
      case 'sqrt': code = [...a[0]!, ...(lane ? v.sqrt : [op.f32sqrt])]; break;
      // x <= 0 ? 0 : x (NaN stays NaN, −0 becomes 0)
      case 'relu': code = lane ? [...zero(true), ...a[0]!, ...a[0]!, ...zero(true), ...v.le, ...v.bitselect] : [...zero(false), ...a[0]!, ...a[0]!, ...zero(false), op.f32le, op.select]; break;
      // ct · (x > 0 ? 1 : 0)
      case 'reluGrad': code = lane ? [...a[1]!, ...one(true), ...zero(true), ...a[0]!, ...zero(true), ...v.gt, ...v.bitselect, ...v.mul] : [...a[1]!, ...one(false), ...zero(false), ...a[0]!, ...zero(false), op.f32gt, op.select, op.f32mul]; break;
      // c ≠ 0 ? a : b (NaN counts as nonzero)
      case 'select': code = lane ? [...a[1]!, ...a[2]!, ...a[0]!, ...zero(true), ...v.ne, ...v.bitselect] : [...a[1]!, ...a[2]!, ...a[0]!, ...zero(false), op.f32ne, op.select]; break;
      case 'pow': code = [...a[0]!, op.promote, op.f64const, ...f64c((o.params as { p: number }).p), op.call, ...uleb(importIndex('pow')), op.demote]; break;
      default: code = [...a[0]!, op.promote, op.call, ...uleb(importIndex(o.prim)), op.demote];
    }
    return [...code, ...set(lane ? vOp(j) : sOp(j))];
  });
  const store = (lane: boolean) => [...get(OUT), ...get(AT), op.i32add, ...get(lane ? vOp(ops.length - 1) : sOp(ops.length - 1)), ...(lane ? [...v.store, ...memarg(4)] : [op.f32store, ...memarg(2)])];
  /** at = (o + c) · 4 */
  const address = [...get(O), ...get(C), op.i32add, op.i32const, 2, op.i32shl, ...set(AT)];
  /** while (c + step <= L) { body; c += step } */
  const inner = (lane: boolean): number[] => {
    const step = lane ? 4 : 1;
    return [
      op.block, 0x40, op.loop, 0x40,
      ...get(C), op.i32const, ...sleb(step), op.i32add, op.i32const, ...sleb(L), op.i32gtu, op.brIf, 1,
      ...address, ...loads(lane), ...compute(lane), ...store(lane),
      ...get(C), op.i32const, ...sleb(step), op.i32add, ...set(C), op.br, 0,
      op.end, op.end,
    ];
  };
  const splats = inputs.flatMap((kind, k) => (kind === 'scalar' && lanes ? [...get(k), ...v.splat, ...set(vIn(k))] : []));
  const body = [
    ...vec(locals.map(([count, type]) => [...uleb(count!), type!])),
    ...splats,
    op.block, 0x40, op.loop, 0x40,
    ...get(O), op.i32const, ...sleb(n), op.i32geu, op.brIf, 1,
    op.i32const, 0, ...set(C),
    ...(lanes ? inner(true) : []),
    ...inner(false),
    ...get(O), op.i32const, ...sleb(L), op.i32add, ...set(O), op.br, 0,
    op.end, op.end,
    op.end,
  ];
  const params = inputs.map((kind) => (kind === 'scalar' ? F32 : I32));
  const types = [
    [0x60, ...vec(params.concat(I32).map((t) => [t])), 0],
    [0x60, 1, F64, 1, F64],
    [0x60, 2, F64, F64, 1, F64],
  ];
  const importEntries = [
    [...str('env'), ...str('memory'), 0x02, 0x03, ...uleb(1), ...uleb(MAX_PAGES)],
    ...imports.map((im) => [...str('js'), ...str(im.name), 0x00, im.arity === 1 ? 1 : 2]),
  ];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(types)),
    ...section(2, vec(importEntries)),
    ...section(3, vec([[0]])),
    ...section(7, vec([[...str('run'), 0x00, ...uleb(imports.length)]])),
    ...section(10, vec([[...uleb(body.length), ...body]])),
  ]);
};

/** How often chains ran in WebAssembly and in the JavaScript fallback (for tests and benchmarks). */
export const chainStats = { compiled: 0, wasmRuns: 0, hostRuns: 0 };

/**
 * The chain as WebAssembly over `mem`, falling back to `host` (the JavaScript
 * loop) where its operands are not in the kernel memory; `host` itself where
 * the chain is small, not float32, or the module cannot be made.
 */
export const wasmChain = (mem: CpuMemory, chain: FusedChain, host: ChainKernel<Data> | undefined): ChainKernel<Data> | undefined => {
  if (host === undefined || chain.dtype !== 'float32' || chain.n * 4 < MIN_KERNEL_MEMORY_BYTES) return host;
  let run: (...args: number[]) => void;
  try {
    const js = Object.fromEntries(imports.map((im) => [im.name, im.fn]));
    const instance = new WebAssembly.Instance(new WebAssembly.Module(emit(chain)), { env: { memory: mem.memory }, js });
    run = instance.exports['run'] as typeof run;
    chainStats.compiled++;
  } catch {
    return host;
  }
  const { inputs, n } = chain;
  const fallback = (bufs: readonly Data[]): Data => {
    chainStats.hostRuns++;
    return host(bufs);
  };
  return (bufs) => {
    for (let k = 0; k < inputs.length; k++) if (inputs[k] === 'full' && !mem.inArena(bufs[k]!)) return fallback(bufs);
    const out = mem.arenaOut(n);
    if (out === undefined) return fallback(bufs);
    chainStats.wasmRuns++;
    const staged: [number, number][] = [];
    const args = bufs.map((b, k) => {
      if (inputs[k] === 'scalar') return b[0]!;
      if (inputs[k] === 'full' || mem.inArena(b)) return b.byteOffset;
      const at = mem.stage(b as unknown as Float32Array); // a row (float32: the chain is)  outside the kernel memory (a bias): copied in for the call
      staged.push([at, b.length * 4]);
      return at;
    });
    run(...args, out.byteOffset);
    for (const [at, bytes] of staged) mem.arena.release(at, bytes);
    return out;
  };
};
