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
 * passed as values); anything else runs the host chain (chains.ts). Chains of
 * PARALLEL_MIN_ELEMENTS or more run on both threads: the module's bytes stay in
 * the shared memory, the worker compiles them on first sight (job 'fused' in
 * cpu-protocol.mjs), and both take units of work from one atomic counter, as
 * the backend's own chunked kernels do; each element is computed alone, so the
 * split changes no bit.
 */
import type { ChainKernel, ChainPrimitive, FusedChain } from '../../chains.js';
import type { Data } from '../../primitives.js';
import { CHAIN_IMPORTS } from '../cpu-protocol.mjs';
import { MAX_PAGES, MIN_KERNEL_MEMORY_BYTES, type CpuMemory } from './memory.js';
import { PARALLEL_MIN_ELEMENTS, type CpuThreads } from './threads.js';

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
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
};
const f32c = (v: number): number[] => [...new Uint8Array(Float32Array.of(v).buffer)];
const f64c = (v: number): number[] => [...new Uint8Array(Float64Array.of(v).buffer)];
const str = (s: string): number[] => [...uleb(s.length), ...[...s].map((c) => c.charCodeAt(0))];
const vec = (items: readonly number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];

const I32 = 0x7f,
  F32 = 0x7d,
  F64 = 0x7c,
  V128 = 0x7b;
const op = {
  block: 0x02,
  loop: 0x03,
  br: 0x0c,
  brIf: 0x0d,
  end: 0x0b,
  if: 0x04,
  call: 0x10,
  select: 0x1b,
  get: 0x20,
  set: 0x21,
  tee: 0x22,
  f32load: 0x2a,
  f64load: 0x2b,
  f32store: 0x38,
  f64store: 0x39,
  i32const: 0x41,
  f32const: 0x43,
  f64const: 0x44,
  i32eq: 0x46,
  i32ltu: 0x49,
  i32geu: 0x4f,
  i32gtu: 0x4b,
  i32add: 0x6a,
  i32sub: 0x6b,
  i32mul: 0x6c,
  i32shl: 0x74,
  f32ne: 0x5c,
  f32gt: 0x5e,
  f32le: 0x5f,
  f32neg: 0x8c,
  f32sqrt: 0x91,
  f32add: 0x92,
  f32mul: 0x94,
  f32div: 0x95,
  f64add: 0xa0,
  demote: 0xb6,
  promote: 0xbb,
} as const;
const simd = (code: number): number[] => [0xfd, ...uleb(code)];
const v = {
  load: simd(0x00),
  store: simd(0x0b),
  splat: simd(0x13),
  ne: simd(0x42),
  gt: simd(0x44),
  le: simd(0x45),
  bitselect: simd(0x52),
  neg: simd(0xe1),
  sqrt: simd(0xe3),
  add: simd(0xe4),
  mul: simd(0xe6),
  div: simd(0xe7),
};
const memarg = (align: number): number[] => [align, 0];
/** i32.atomic.rmw.add (the old value): the chunks' shared counter. */
const atomicAdd = [0xfe, ...uleb(0x1e), 2, 0];

/** The ops with a four-lane form; the others call JavaScript one element at a time. */
const lanewise: ReadonlySet<ChainPrimitive> = new Set(['add', 'mul', 'neg', 'reciprocal', 'sqrt', 'relu', 'reluGrad', 'select']);
/** The imported JavaScript functions (float64), in import order: the host kernels' expressions. */
const imports: readonly { readonly name: keyof typeof CHAIN_IMPORTS & ChainPrimitive; readonly arity: 1 | 2 }[] = [
  { name: 'exp', arity: 1 },
  { name: 'log', arity: 1 },
  { name: 'tanh', arity: 1 },
  { name: 'sin', arity: 1 },
  { name: 'cos', arity: 1 },
  { name: 'sigmoid', arity: 1 },
  { name: 'pow', arity: 2 },
];

/** At most this many inputs (the worker's job has slots for eight pointers and eight scalars). */
const MAX_INPUTS = 8;
/** At most this many written results (the worker's job has four output pointers). */
const MAX_OUTPUTS = 4;
/** Elements per unit of work of a chain without row inputs (chunks are whole units). */
const UNIT = 1024;

/**
 * The module's bytes: `chunks(a0…a7, s0…s7, o0…o3, rows, chunk, counter, acc,
 * inner, mid)` over the chain. Input k is pointer a_k (full or row) or value
 * s_k (scalar); output r is written at o_r; the elements are cut in units of
 * `L` (a row, or UNIT), taken `chunk` at a time from the shared counter (an
 * atomic add), so both threads can share them. A chain with a sum adds each
 * element of the summed op into the float64 `acc[⌊k / inner⌋ mod mid]` in
 * element order, so it runs on one thread, one element at a time.
 */
const emit = (chain: FusedChain, L: number): Uint8Array<ArrayBuffer> => {
  const { n, inputs, ops, outputs, sum } = chain;
  const lanes = sum === undefined && ops.every((o) => lanewise.has(o.prim));
  const nIn = inputs.length;
  const A = (k: number) => k,
    S = (k: number) => MAX_INPUTS + k,
    OUT = (r: number) => 2 * MAX_INPUTS + r;
  const ROWS = OUT(MAX_OUTPUTS),
    CHUNK = ROWS + 1,
    COUNTER = ROWS + 2,
    ACC = ROWS + 3,
    INNER = ROWS + 4,
    MID = ROWS + 5;
  // Locals: o, c, at (byte offset of element o + c), start, end, oEnd, lim, and the sum's q (within a run of
  // inner), m (its slot) and its slot's address; then per input and per op a scalar and a vector.
  const O = MID + 1,
    C = O + 1,
    AT = O + 2,
    START = O + 3,
    END = O + 4,
    OEND = O + 5,
    LIM = O + 6,
    Q = O + 7,
    M = O + 8,
    ACC_AT = O + 9;
  const sIn = (k: number) => ACC_AT + 1 + k,
    vIn = (k: number) => ACC_AT + 1 + nIn + k;
  const sOp = (j: number) => ACC_AT + 1 + 2 * nIn + j,
    vOp = (j: number) => ACC_AT + 1 + 2 * nIn + ops.length + j;
  const locals = [
    [10, I32],
    [nIn, F32],
    [nIn, V128],
    [ops.length, F32],
    [ops.length, V128],
  ];
  const get = (i: number) => [op.get, ...uleb(i)],
    set = (i: number) => [op.set, ...uleb(i)];
  const ref = (k: number, lane: boolean) => (k < nIn ? get(lane ? vIn(k) : sIn(k)) : get(lane ? vOp(k - nIn) : sOp(k - nIn)));
  const importIndex = (p: ChainPrimitive) => imports.findIndex((im) => im.name === p);
  const i32 = (x: number) => [op.i32const, ...sleb(x)];

  /** Reads each input into its local for element o + c (four of them in lanes). */
  const loads = (lane: boolean): number[] =>
    inputs.flatMap((kind, k) => {
      if (kind === 'scalar') return lane ? [] : [...get(S(k)), ...set(sIn(k))];
      const addr = kind === 'full' ? [...get(A(k)), ...get(AT), op.i32add] : [...get(A(k)), ...get(C), ...i32(2), op.i32shl, op.i32add];
      return lane ? [...addr, ...v.load, ...memarg(4), ...set(vIn(k))] : [...addr, op.f32load, ...memarg(2), ...set(sIn(k))];
    });
  const zero = (lane: boolean) => (lane ? [op.f32const, ...f32c(0), ...v.splat] : [op.f32const, ...f32c(0)]);
  const one = (lane: boolean) => (lane ? [op.f32const, ...f32c(1), ...v.splat] : [op.f32const, ...f32c(1)]);
  /** Each op's value into its local. */
  const compute = (lane: boolean): number[] =>
    ops.flatMap((o, j) => {
      const a = o.args.map((k) => ref(k, lane));
      let code: number[];
      switch (o.prim) {
        case 'add':
          code = [...a[0]!, ...a[1]!, ...(lane ? v.add : [op.f32add])];
          break;
        case 'mul':
          code = [...a[0]!, ...a[1]!, ...(lane ? v.mul : [op.f32mul])];
          break;
        case 'neg':
          code = [...a[0]!, ...(lane ? v.neg : [op.f32neg])];
          break;
        case 'reciprocal':
          code = [...one(lane), ...a[0]!, ...(lane ? v.div : [op.f32div])];
          break;
        case 'sqrt':
          code = [...a[0]!, ...(lane ? v.sqrt : [op.f32sqrt])];
          break;
        // x <= 0 ? 0 : x (NaN stays NaN, −0 becomes 0)
        case 'relu':
          code = lane
            ? [...zero(true), ...a[0]!, ...a[0]!, ...zero(true), ...v.le, ...v.bitselect]
            : [...zero(false), ...a[0]!, ...a[0]!, ...zero(false), op.f32le, op.select];
          break;
        // ct · (x > 0 ? 1 : 0)
        case 'reluGrad':
          code = lane
            ? [...a[1]!, ...one(true), ...zero(true), ...a[0]!, ...zero(true), ...v.gt, ...v.bitselect, ...v.mul]
            : [...a[1]!, ...one(false), ...zero(false), ...a[0]!, ...zero(false), op.f32gt, op.select, op.f32mul];
          break;
        // c ≠ 0 ? a : b (NaN counts as nonzero)
        case 'select':
          code = lane
            ? [...a[1]!, ...a[2]!, ...a[0]!, ...zero(true), ...v.ne, ...v.bitselect]
            : [...a[1]!, ...a[2]!, ...a[0]!, ...zero(false), op.f32ne, op.select];
          break;
        case 'pow':
          code = [...a[0]!, op.promote, op.f64const, ...f64c((o.params as { p: number }).p), op.call, ...uleb(importIndex('pow')), op.demote];
          break;
        default:
          code = [...a[0]!, op.promote, op.call, ...uleb(importIndex(o.prim)), op.demote];
      }
      return [...code, ...set(lane ? vOp(j) : sOp(j))];
    });
  const store = (lane: boolean) =>
    outputs.flatMap((j, r) => [
      ...get(OUT(r)),
      ...get(AT),
      op.i32add,
      ...get(lane ? vOp(j) : sOp(j)),
      ...(lane ? [...v.store, ...memarg(4)] : [op.f32store, ...memarg(2)]),
    ]);
  /** acc[m] += the summed op's value (one element: sums never run in lanes); then q, m move on. */
  const summing =
    sum === undefined
      ? []
      : [
          ...get(ACC),
          ...get(M),
          ...i32(3),
          op.i32shl,
          op.i32add,
          op.tee,
          ...uleb(ACC_AT),
          ...get(ACC_AT),
          op.f64load,
          ...memarg(3),
          ...get(sOp(sum.of)),
          op.promote,
          op.f64add,
          op.f64store,
          ...memarg(3),
          // if (++q == inner) { q = 0; if (++m == mid) m = 0 }
          ...get(Q),
          ...i32(1),
          op.i32add,
          op.tee,
          ...uleb(Q),
          ...get(INNER),
          op.i32eq,
          op.if,
          0x40,
          ...i32(0),
          ...set(Q),
          ...get(M),
          ...i32(1),
          op.i32add,
          op.tee,
          ...uleb(M),
          ...get(MID),
          op.i32eq,
          op.if,
          0x40,
          ...i32(0),
          ...set(M),
          op.end,
          op.end,
        ];
  /** at = (o + c) · 4 */
  const address = [...get(O), ...get(C), op.i32add, ...i32(2), op.i32shl, ...set(AT)];
  /** while (c + step <= lim) { body; c += step } */
  const inner = (lane: boolean): number[] => {
    const step = lane ? 4 : 1;
    return [
      op.block,
      0x40,
      op.loop,
      0x40,
      ...get(C),
      ...i32(step),
      op.i32add,
      ...get(LIM),
      op.i32gtu,
      op.brIf,
      1,
      ...address,
      ...loads(lane),
      ...compute(lane),
      ...store(lane),
      ...(lane ? [] : summing),
      ...get(C),
      ...i32(step),
      op.i32add,
      ...set(C),
      op.br,
      0,
      op.end,
      op.end,
    ];
  };
  /** min(x, y) of two values on the stack's recipe. */
  const min = (x: number[], y: number[]) => [...x, ...y, ...x, ...y, op.i32ltu, op.select];
  const splats = inputs.flatMap((kind, k) => (kind === 'scalar' && lanes ? [...get(S(k)), ...v.splat, ...set(vIn(k))] : []));
  const body = [
    ...vec(locals.filter(([count]) => count! > 0).map(([count, type]) => [...uleb(count!), type!])),
    ...splats,
    op.block,
    0x40,
    op.loop,
    0x40,
    // start = the next chunk (an atomic add on the shared counter); done when past the last unit.
    ...get(COUNTER),
    ...get(CHUNK),
    ...atomicAdd,
    ...set(START),
    ...get(START),
    ...get(ROWS),
    op.i32geu,
    op.brIf,
    1,
    ...min([...get(START), ...get(CHUNK), op.i32add], get(ROWS)),
    ...set(END),
    ...get(START),
    ...i32(L),
    op.i32mul,
    ...set(O),
    ...min([...get(END), ...i32(L), op.i32mul], i32(n)),
    ...set(OEND),
    op.block,
    0x40,
    op.loop,
    0x40,
    ...get(O),
    ...get(OEND),
    op.i32geu,
    op.brIf,
    1,
    ...min(i32(L), [...get(OEND), ...get(O), op.i32sub]),
    ...set(LIM),
    ...i32(0),
    ...set(C),
    ...(lanes ? inner(true) : []),
    ...inner(false),
    ...get(O),
    ...i32(L),
    op.i32add,
    ...set(O),
    op.br,
    0,
    op.end,
    op.end,
    op.br,
    0,
    op.end,
    op.end,
    op.end,
  ];
  const params = [...Array(MAX_INPUTS).fill(I32), ...Array(MAX_INPUTS).fill(F32), ...Array(MAX_OUTPUTS).fill(I32), ...Array(6).fill(I32)];
  const types = [
    [0x60, ...vec(params.map((t) => [t])), 0],
    [0x60, 1, F64, 1, F64],
    [0x60, 2, F64, F64, 1, F64],
  ];
  const importEntries = [
    [...str('env'), ...str('memory'), 0x02, 0x03, ...uleb(1), ...uleb(MAX_PAGES)],
    ...imports.map((im) => [...str('js'), ...str(im.name), 0x00, im.arity === 1 ? 1 : 2]),
  ];
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, vec(types)),
    ...section(2, vec(importEntries)),
    ...section(3, vec([[0]])),
    ...section(7, vec([[...str('chunks'), 0x00, ...uleb(imports.length)]])),
    ...section(10, vec([[...uleb(body.length), ...body]])),
  ]);
};

/** How often chains ran in WebAssembly (the tests check the path they mean to test ran). */
export const chainStats = { wasmRuns: 0 };

/** Chains compiled so far (their ids for the worker). */
let nextId = 1;

/**
 * The chain as WebAssembly over `mem`, on both threads where it is large
 * (declined where it also has a sum), falling back to `host` (the JavaScript loop) where its operands
 * are not in the kernel memory; `host` itself where the chain is small, not
 * float32, or the module cannot be made; undefined (declined) where it has
 * more than eight inputs or four outputs.
 */
export const wasmChain = (mem: CpuMemory, threads: CpuThreads, chain: FusedChain, host: ChainKernel<Data> | undefined): ChainKernel<Data> | undefined => {
  // A sum adds in element order, so its chain runs on one thread: declined where two would share the chain (jit
  // then fuses the part before the sum, on both threads, and sums alone).
  if (chain.sum !== undefined && threads.parallel && chain.n >= PARALLEL_MIN_ELEMENTS) return undefined;
  if (host === undefined || chain.dtype !== 'float32' || chain.n * 4 < MIN_KERNEL_MEMORY_BYTES) return host;
  // Past the module's slots, declined rather than run as the one-thread JavaScript loop (several times slower
  // than unfused WebAssembly kernels at this size): jit then fuses the chain's single-result parts.
  if (chain.inputs.length > MAX_INPUTS || chain.outputs.length > MAX_OUTPUTS) return undefined;
  const hasRows = chain.inputs.includes('row');
  const L = hasRows ? chain.row : UNIT;
  const rows = Math.ceil(chain.n / L);
  let chunks: (...args: number[]) => void, id: number, bytesAt: number, length: number;
  try {
    const bytes = emit(chain, L);
    chunks = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory: mem.memory }, js: CHAIN_IMPORTS }).exports['chunks'] as typeof chunks;
    // The bytes stay in the kernel memory for the worker to compile (a few hundred bytes a chain).
    id = nextId++;
    length = bytes.length;
    bytesAt = mem.arena.malloc(length);
    new Uint8Array(mem.memory.buffer, bytesAt, length).set(bytes);
  } catch {
    return host;
  }
  const { inputs, n, outputs, sum } = chain;
  const mine = (_id: number, _bytes: number, _length: number, ...rest: number[]) => chunks(...rest);
  return (bufs) => {
    for (let k = 0; k < inputs.length; k++) if (inputs[k] === 'full' && !mem.inArena(bufs[k]!)) return host(bufs);
    const outs: Float32Array[] = [];
    for (let r = 0; r < outputs.length; r++) {
      const out = mem.arenaOut(n);
      if (out === undefined) {
        for (const o of outs) mem.arena.freeFloat32(o);
        return host(bufs);
      }
      outs.push(out);
    }
    chainStats.wasmRuns++;
    const staged: [number, number][] = [];
    const a = new Array<number>(MAX_INPUTS).fill(0),
      sv = new Array<number>(MAX_INPUTS).fill(0),
      o = new Array<number>(MAX_OUTPUTS).fill(0);
    bufs.forEach((b, k) => {
      if (inputs[k] === 'scalar') sv[k] = b[0]!;
      else if (inputs[k] === 'full' || mem.inArena(b)) a[k] = b.byteOffset;
      else {
        const at = mem.stage(b as unknown as Float32Array); // a row outside the kernel memory (a bias): copied in for the call
        staged.push([at, b.length * 4]);
        a[k] = at;
      }
    });
    outs.forEach((out, r) => {
      o[r] = out.byteOffset;
    });
    if (sum === undefined && threads.parallel && n >= PARALLEL_MIN_ELEMENTS) {
      const args = {
        id,
        bytes: bytesAt,
        length,
        rows,
        acc: 0,
        inner: 1,
        mid: 1,
        ...Object.fromEntries([...a.map((x, k) => [`a${k}`, x]), ...sv.map((x, k) => [`s${k}`, x]), ...o.map((x, r) => [`o${r}`, x])]),
      };
      threads.chunked('fused', args as never, rows, 1, undefined, mine);
    } else {
      // One thread: every unit in one chunk, from a counter of its own; a sum's float64 slots zeroed first.
      const counter = mem.counter;
      Atomics.store(new Int32Array(mem.memory.buffer, counter, 1), 0, 0);
      const mid = sum?.mid ?? 1;
      let acc = 0;
      try {
        if (sum !== undefined) {
          acc = mem.arena.malloc(mid * 8);
          new Float64Array(mem.memory.buffer, acc, mid).fill(0);
        }
        chunks(...a, ...sv, ...o, rows, rows, counter, acc, sum?.inner ?? 1, mid);
        if (sum !== undefined) {
          const total = mem.alloc('float32', mid, false);
          total.set(new Float64Array(mem.memory.buffer, acc, mid));
          outs.push(total as Float32Array);
        }
      } catch (e) {
        // Nothing of this call outlives it: its outputs and staged rows go back (jit never saw them).
        for (const out of outs) mem.arena.freeFloat32(out);
        for (const [at, bytes] of staged) mem.arena.release(at, bytes);
        throw e;
      } finally {
        if (acc !== 0) mem.arena.release(acc, mid * 8);
      }
    }
    for (const [at, bytes] of staged) mem.arena.release(at, bytes);
    return outs;
  };
};
