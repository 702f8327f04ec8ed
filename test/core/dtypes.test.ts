/**
 * int32 and bool tensors against references written here: plain JavaScript
 * integer arithmetic (`| 0` and Math.imul are NumPy's int32 wraparound),
 * NumPy's floor division and mod written out, and the promotion table typed in
 * by hand; on the reference backend, the cpu backend on one and two threads,
 * gpujs where a display is, and webgpu where an adapter is (their int32 lives
 * in float32: exact within ±2^24, so their values stay inside).
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { grad, jit, jvp, valueAndGrad, vmap } from '../../src/autodiff/index.js';
import {
  abs,
  add,
  concat,
  arange,
  argmax,
  argmin,
  argsort,
  cast,
  createCpuBackend,
  createGpujsBackend,
  createReferenceBackend,
  detectGpu,
  DTYPES,
  equal,
  exp,
  floorDiv,
  fromArray,
  full,
  gather,
  greater,
  less,
  logicalAnd,
  logicalNot,
  logicalOr,
  logicalXor,
  max,
  maximum,
  mean,
  min,
  mod,
  mul,
  neg,
  notEqual,
  oneHot,
  promoteTypes,
  reshape,
  scalar,
  scatterAdd,
  softmaxCrossEntropy,
  sub,
  sum,
  take,
  tensor,
  toBackend,
  topk,
  where,
  zeros,
  type Backend,
  type DType,
  type Tensor,
} from '../../src/core/index.js';
import { requireSystem } from '../system.js';
import { left, right } from '../helpers.js';
import { webgpuFor } from '../webgpu/backend.js';

const reference = createReferenceBackend();
const cpu1 = createCpuBackend({ threads: 1 });
const cpu2 = createCpuBackend({ threads: 2 });
const gpu = detectGpu();
const gpujs = requireSystem({ suite: 'gpujs dtypes (test/core/dtypes.test.ts)', found: gpu.context, missing: gpu.summary }) ? createGpujsBackend() : undefined;
const webgpu = webgpuFor('webgpu dtypes (test/core/dtypes.test.ts)');
afterAll(() => {
  cpu1.dispose();
  cpu2.dispose();
  gpujs?.dispose();
  webgpu?.dispose();
});

/** Each backend with the largest |int32| its values stay within here (gpujs: exact within ±2^24; products of ±2^11 stay inside). */
const backends: readonly [string, Backend, number][] = [
  ['reference', reference, 2 ** 31],
  ['cpu (1 thread)', cpu1, 2 ** 31],
  ['cpu (2 threads)', cpu2, 2 ** 31],
  ...(gpujs === undefined ? [] : [['gpujs', gpujs, 2 ** 11] as [string, Backend, number]]),
  ...(webgpu === undefined ? [] : [['webgpu', webgpu, 2 ** 11] as [string, Backend, number]]),
];

const ints = (values: readonly number[], be: Backend): Tensor => right(fromArray(values, [values.length], 'int32', be));
const floats = (values: readonly number[], be: Backend, dtype: DType = 'float32'): Tensor => right(fromArray(values, [values.length], dtype, be));
const bools = (values: readonly boolean[], be: Backend): Tensor => right(tensor([...values], 'bool', be));
const values = (t: Tensor): number[] => Array.from(t.toTypedArray());

/** NumPy's floor_divide and mod on int32 written out: x // 0 = x % 0 = 0; results wrap. */
const floorDivRef = (a: number, b: number): number => (b === 0 ? 0 : Math.floor(a / b) | 0);
const modRef = (a: number, b: number): number => (b === 0 ? 0 : a - b * Math.floor(a / b));

describe.each(backends)('int32 and bool on %s', (_name, be, limit) => {
  const int32s = (n: number) => fc.array(fc.integer({ min: -limit, max: limit - 1 }), { minLength: n, maxLength: n });
  const pairs = fc.integer({ min: 1, max: 12 }).chain((n) => fc.tuple(int32s(n), int32s(n)));

  it('add, sub, mul and neg wrap around as NumPy int32 (JavaScript | 0 and Math.imul)', () => {
    fc.assert(
      fc.property(pairs, ([a, b]) => {
        const [x, y] = [ints(a, be), ints(b, be)];
        const outs = [add(x, y), sub(x, y), mul(x, y), neg(x)];
        for (const o of outs) expect(o.dtype).toBe('int32');
        expect(outs[0]!.toTypedArray()).toEqual(Int32Array.from(a, (v, i) => (v + b[i]!) | 0));
        expect(outs[1]!.toTypedArray()).toEqual(Int32Array.from(a, (v, i) => (v - b[i]!) | 0));
        const prod = Int32Array.from(a, (v, i) => Math.imul(v, b[i]!));
        if (limit === 2 ** 31) expect(outs[2]!.toTypedArray()).toEqual(prod);
        else expect(outs[2]!.toTypedArray()).toEqual(Int32Array.from(a, (v, i) => v * b[i]!));
        expect(outs[3]!.toTypedArray()).toEqual(Int32Array.from(a, (v) => -v | 0));
      }),
      { numRuns: 25 },
    );
  });

  it('the edges of int32: 2^31 − 1 + 1 and −2^31 · −1 wrap, −(−2^31) is −2^31', () => {
    if (limit < 2 ** 31) return;
    const x = ints([2 ** 31 - 1, -(2 ** 31), -(2 ** 31), 65537], be);
    const y = ints([1, -1, -1, 65537], be);
    expect(values(add(x, y))).toEqual([-(2 ** 31), 2 ** 31 - 1, 2 ** 31 - 1, 131074]);
    expect(values(mul(x, y))).toEqual([2 ** 31 - 1, -(2 ** 31), -(2 ** 31), Math.imul(65537, 65537)]);
    expect(values(neg(x))).toEqual([-(2 ** 31 - 1), -(2 ** 31), -(2 ** 31), -65537]);
    expect(values(floorDiv(x, y))).toEqual([2 ** 31 - 1, -(2 ** 31), -(2 ** 31), 1]);
  });

  it('floorDiv and mod as NumPy floor_divide and mod (x // 0 = x % 0 = 0)', () => {
    fc.assert(
      fc.property(pairs, ([a, b]) => {
        const bz = b.map((v, i) => (i % 3 === 0 ? 0 : v));
        const [x, y] = [ints(a, be), ints(bz, be)];
        expect(values(floorDiv(x, y))).toEqual(a.map((v, i) => floorDivRef(v, bz[i]!)));
        expect(values(mod(x, y))).toEqual(a.map((v, i) => modRef(v, bz[i]!)));
      }),
      { numRuns: 20 },
    );
    // Every pair of a grid, equal ones and near-multiples included: a GPU's float32 division is not correctly
    // rounded (−2045 / −2045 came out below 1 on webgpu), so the quotient is corrected by its remainder.
    const grid = [-2047, -2045, -1024, -1023, -7, -3, -2, -1, 1, 2, 3, 7, 1023, 1024, 2045, 2047]; // within every backend's range
    const a = grid.flatMap((p) => grid.map(() => p)),
      b = grid.flatMap(() => grid);
    const [x, y] = [ints(a, be), ints(b, be)];
    expect(values(floorDiv(x, y))).toEqual(a.map((v, i) => floorDivRef(v, b[i]!)));
    expect(values(mod(x, y))).toEqual(a.map((v, i) => modRef(v, b[i]!)));
  });

  it('maximum, minimum, max, min, sum and mean of int32', () => {
    const a = [3, -limit, limit - 1, 0, -7];
    const x = ints(a, be);
    expect(values(maximum(x, 0))).toEqual(a.map((v) => Math.max(v, 0)));
    expect(max(x).dtype).toBe('int32');
    expect(max(x).item()).toBe(limit - 1);
    expect(min(x).dtype).toBe('int32');
    expect(min(x).item()).toBe(-limit);
    expect(sum(ints([1, 2, 3], be)).toTypedArray()).toEqual(Int32Array.of(6));
    if (limit === 2 ** 31) expect(sum(ints([2 ** 31 - 1, 1, 5], be)).item()).toBe((2 ** 31 - 1 + 1 + 5) | 0);
    expect(mean(ints([1, 2], be)).dtype).toBe('float32');
    expect(mean(ints([1, 2], be)).item()).toBe(1.5);
  });

  it('comparisons give bool, and a bool sums to an int32 count', () => {
    const x = floats([0.5, 2, Number.NaN, -1, 3], be);
    const g = greater(x, 1);
    expect(g.dtype).toBe('bool');
    expect(g.toTypedArray()).toEqual(Uint8Array.of(0, 1, 0, 0, 1));
    expect(notEqual(x, x).toTypedArray()).toEqual(Uint8Array.of(0, 0, 1, 0, 0));
    const count = sum(g);
    expect(count.dtype).toBe('int32');
    expect(count.item()).toBe(2);
    expect(values(sum(reshape(less(x, 1), [1, 5]), 0))).toEqual([1, 0, 0, 1, 0]);
    expect(equal(ints([1, 2, 3], be), floats([1, 2.5, 3], be)).toTypedArray()).toEqual(Uint8Array.of(1, 0, 1));
  });

  it('logical and, or, xor and not on bool match their truth tables', () => {
    const p = [true, true, false, false],
      q = [true, false, true, false];
    const [x, y] = [bools(p, be), bools(q, be)];
    const cases: [Tensor, boolean[]][] = [
      [logicalAnd(x, y), p.map((v, i) => v && q[i]!)],
      [logicalOr(x, y), p.map((v, i) => v || q[i]!)],
      [logicalXor(x, y), p.map((v, i) => v !== q[i]!)],
      [logicalNot(x), p.map((v) => !v)],
    ];
    for (const [got, want] of cases) {
      expect(got.dtype).toBe('bool');
      expect(got.toTypedArray()).toEqual(Uint8Array.from(want, Number));
    }
    // Non-bool operands are read as x ≠ 0.
    expect(logicalAnd(ints([0, 2, 3], be), floats([1, 0, Number.NaN], be)).toTypedArray()).toEqual(Uint8Array.of(0, 0, 1));
  });

  it('casts: float → int32 truncates toward zero, saturates, NaN → 0; → bool is x ≠ 0; int32 → float32 rounds to nearest', () => {
    const f = [1.7, -1.7, 0.5, -0.5, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1e10, -1e10, 3];
    const want = [1, -1, 0, 0, 0, 2 ** 31 - 1, -(2 ** 31), 2 ** 31 - 1, -(2 ** 31), 3];
    for (const dt of ['float32', 'float64'] as const) {
      const c = cast(floats(f, be, dt), 'int32');
      expect(c.dtype).toBe('int32');
      if (limit === 2 ** 31) expect(values(c)).toEqual(want);
      else expect(values(c).filter((_v, i) => Math.abs(want[i]!) < 2 ** 24)).toEqual(want.filter((v) => Math.abs(v) < 2 ** 24));
    }
    expect(cast(floats([0, -0, 2, Number.NaN], be), 'bool').toTypedArray()).toEqual(Uint8Array.of(0, 0, 1, 1));
    expect(cast(ints([0, 5, -1], be), 'bool').toTypedArray()).toEqual(Uint8Array.of(0, 1, 1));
    expect(cast(bools([true, false], be), 'int32').toTypedArray()).toEqual(Int32Array.of(1, 0));
    expect(cast(bools([true, false], be), 'float64').toTypedArray()).toEqual(Float64Array.of(1, 0));
    if (limit === 2 ** 31) {
      const big = [16777217, 2 ** 31 - 1, -(2 ** 31)];
      expect(cast(ints(big, be), 'float32').toTypedArray()).toEqual(Float32Array.from(big));
      expect(cast(ints(big, be), 'float64').toTypedArray()).toEqual(Float64Array.from(big));
    }
  });

  it('argmax, argmin, argsort and topk give int32 indices', () => {
    const x = right(fromArray([0.5, 2, -1, 3, 3, Number.NaN], [2, 3], 'float32', be));
    for (const [got, want] of [
      [argmax(x, 1), [1, 2]],
      [argmin(x, 1), [2, 2]], // NaN is the smallest too, as NumPy's
      [argmax(x), [5]],
    ] as const) {
      expect(got.dtype).toBe('int32');
      expect(values(got)).toEqual(want);
    }
    const s = argsort(x, 1);
    expect(s.dtype).toBe('int32');
    expect(values(s)).toEqual([2, 0, 1, 0, 1, 2]);
    const t = topk(x, 1, 1);
    expect(t.indices.dtype).toBe('int32');
    expect(argmin(ints([5, -limit, 7], be)).item()).toBe(1);
  });

  it('gather, scatterAdd, take and oneHot take int32 indices', () => {
    const x = right(fromArray([10, 11, 12, 20, 21, 22], [2, 3], 'float32', be));
    const idx = right(fromArray([2, 0, 1, 1], [2, 2], 'int32', be));
    expect(gather(x, idx, 1).toArray()).toEqual([
      [12, 10],
      [21, 21],
    ]);
    const s = scatterAdd(zeros([2, 3], 'float32', be), idx, right(fromArray([1, 2, 3, 4], [2, 2], 'float32', be)), 1);
    expect(s.toArray()).toEqual([
      [2, 0, 1],
      [0, 7, 0],
    ]);
    expect(take(x, ints([2, 2, 0], be), 1).toArray()).toEqual([
      [12, 12, 10],
      [22, 22, 20],
    ]);
    const h = oneHot(ints([2, 0], be), 3);
    expect(h.dtype).toBe('float32');
    expect(h.toArray()).toEqual([
      [0, 0, 1],
      [1, 0, 0],
    ]);
    expect(oneHot([1], 2, 'int32', be).toTypedArray()).toEqual(Int32Array.of(0, 1));
    // int32 labels to the cross-entropy: the same loss as the array's.
    const logits = right(fromArray([0.1, 0.7, -0.2, 1.5, 0.3, 0.2], [2, 3], 'float32', be));
    expect(softmaxCrossEntropy(logits, ints([2, 0], be)).item()).toBe(softmaxCrossEntropy(logits, [2, 0]).item());
  });

  it('where takes a bool condition; int32 and bool values keep their dtype', () => {
    const c = bools([true, false, true], be);
    const w = where(c, ints([1, 2, 3], be), ints([-1, -2, -3], be));
    expect(w.dtype).toBe('int32');
    expect(values(w)).toEqual([1, -2, 3]);
    expect(where(c, 1.5, floats([0, 0, 0], be)).toTypedArray()).toEqual(Float32Array.of(1.5, 0, 1.5));
  });

  it('constructors: tensor, fromArray, full, zeros, ones, scalar and arange of int32 and bool; reads give Int32Array and Uint8Array', async () => {
    const i = right(tensor([[1, -2]], 'int32', be));
    expect(i.toTypedArray()).toEqual(Int32Array.of(1, -2));
    expect(await i.data()).toEqual(Int32Array.of(1, -2));
    expect(i.toArray()).toEqual([[1, -2]]);
    expect(i.get(0, 1)).toBe(-2);
    const b = right(tensor([true, false], undefined, be));
    expect(b.dtype).toBe('bool');
    expect(b.toTypedArray()).toEqual(Uint8Array.of(1, 0));
    expect(await b.data()).toEqual(Uint8Array.of(1, 0));
    expect(full([2], true, 'bool', be).toTypedArray()).toEqual(Uint8Array.of(1, 1));
    expect(scalar(true, undefined, be).dtype).toBe('bool');
    expect(full([2], -3, 'int32', be).toTypedArray()).toEqual(Int32Array.of(-3, -3));
    expect(scalar(7, 'int32', be).item()).toBe(7);
    expect(arange(4, undefined, 1, { dtype: 'int32', backend: be }).toTypedArray()).toEqual(Int32Array.of(0, 1, 2, 3));
    expect(toBackend(i, reference).toTypedArray()).toEqual(Int32Array.of(1, -2));
    expect(String(i)).toBe(`Tensor(int32 [1, 2] [1, -2] on ${be.name})`);
  });
});

describe('promotion: an explicit lattice, bool < int32 < float32 < float64, JavaScript numbers weakly typed', () => {
  it('promoteTypes over every pair, as the table typed here (and in the README)', () => {
    const table: Record<DType, Record<DType, DType>> = {
      bool: { bool: 'bool', int32: 'int32', float32: 'float32', float64: 'float64' },
      int32: { bool: 'int32', int32: 'int32', float32: 'float32', float64: 'float64' },
      float32: { bool: 'float32', int32: 'float32', float32: 'float32', float64: 'float64' },
      float64: { bool: 'float64', int32: 'float64', float32: 'float64', float64: 'float64' },
    };
    expect([...DTYPES]).toEqual(['bool', 'int32', 'float32', 'float64']);
    for (const a of DTYPES) for (const b of DTYPES) expect(promoteTypes(a, b), `${a} with ${b}`).toBe(table[a][b]);
    expect(() => promoteTypes('int8' as never, 'int32')).toThrow(/^promoteTypes: dtype 'int8' is not one of 'bool', 'int32', 'float32', 'float64'$/);
  });
  it('add, mul, where, equal and concat of every pair of dtypes: the promoted dtype, and the values a float64 reference gives', () => {
    const raw: Record<DType, number[]> = { bool: [1, 0, 1], int32: [-3, 7, 0], float32: [0.5, -2.25, 3], float64: [0.1, 1e-3, -7.5] };
    const make = (d: DType) => right(fromArray(raw[d], [3], d, reference));
    for (const a of DTYPES)
      for (const b of DTYPES) {
        const d = promoteTypes(a, b);
        const [x, y] = [make(a), make(b)];
        const round = (v: number) => (d === 'float32' ? Math.fround(v) : v);
        if (d !== 'bool') {
          const s = add(x, y);
          expect(s.dtype, `${a} + ${b}`).toBe(d);
          expect(values(s), `${a} + ${b}`).toEqual(raw[a].map((v, i) => round(round(v) + round(raw[b][i]!))));
          expect(mul(x, y).dtype, `${a} · ${b}`).toBe(d);
        }
        expect(where(bools([true, false, true], reference), x, y).dtype, `where ${a} ${b}`).toBe(d);
        expect(concat([x, y]).dtype, `concat ${a} ${b}`).toBe(d);
        expect(values(concat([x, y]))).toEqual([...values(cast(x, d)), ...values(cast(y, d))]);
        expect(equal(x, y).dtype).toBe('bool');
      }
    expect(abs(bools([true, false], reference)).dtype).toBe('bool');
    expect(values(abs(ints([-3, 2 ** 31 - 1, -(2 ** 31)], reference)))).toEqual([3, 2 ** 31 - 1, -(2 ** 31)]);
  });
  it('ops follow it: int32 with float32 computes in float32; numbers take the tensor dtype unless they do not fit', () => {
    const i = ints([1, 2], reference);
    expect(add(i, floats([0.5, 0.5], reference)).dtype).toBe('float32');
    expect(add(i, floats([0.5, 0.5], reference, 'float64')).dtype).toBe('float64');
    expect(add(i, 1).dtype).toBe('int32');
    expect(add(i, 0.5).dtype).toBe('float32');
    expect(values(add(i, 0.5))).toEqual([1.5, 2.5]);
    expect(add(cast(bools([true], reference), 'int32'), bools([true], reference)).dtype).toBe('int32');
    expect(mul(floats([2], reference), bools([true], reference)).dtype).toBe('float32');
    expect(equal(bools([true, false], reference), 1).toTypedArray()).toEqual(Uint8Array.of(1, 0));
  });
});

describe('errors are one line naming the fix', () => {
  it('unknown dtypes, bool arithmetic, float-only ops on int32, out-of-range values', () => {
    expect(() => zeros([2], 'int16' as never)).toThrow(/^zeros\(\): dtype 'int16' is not one of/);
    expect(() => add(bools([true], reference), bools([false], reference))).toThrow(/^add: bool operands have no arithmetic: use logicalOr/);
    expect(() => exp(ints([1], reference))).toThrow(/^exp: an operand of dtype int32 \(shape \[1\]\): exp computes on floats; cast it first/);
    expect(left(tensor([1.5], 'int32')).message).toMatch(/^tensor\(\): element 0 is 1.5, not an int32/);
    expect(left(tensor([2 ** 31], 'int32')).message).toMatch(/not an int32 \(an integer in \[-2\^31, 2\^31\)\)/);
    expect(left(tensor([2], 'bool')).message).toMatch(/^tensor\(\): element 0 is 2, not a bool/);
    expect(left(tensor([true, 1])).message).toMatch(/mix booleans and numbers/);
    expect(() => full([1], 0.5, 'int32')).toThrow(/^full\(\): element 0 is 0.5, not an int32/);
    expect(() => gather(zeros([2]), bools([true], reference), 0)).toThrow(/^gather: indices must be int32/);
  });
  it('grad with respect to an int32 or bool input, or of an int32 output, names the cast', () => {
    expect(() => grad((x: Tensor) => sum(cast(x, 'float32')))(ints([1], reference))).toThrow(
      /^grad: an input of dtype int32 \(shape \[1\]\) has no derivative: cast it to a float \(cast\(x, 'float32'\)\)/,
    );
    expect(() => grad((x: Tensor) => sum(cast(x, 'int32')))(floats([1.5], reference))).toThrow(/returned a int32 tensor, which has no derivative/);
  });
  it.skipIf(webgpu === undefined)('webgpu refuses int32 values beyond ±2^24 at upload', () => {
    expect(left(fromArray([-(2 ** 24) - 1], [1], 'int32', webgpu)).message).toMatch(/beyond ±2\^24, what the webgpu backend holds exactly/);
    expect(right(fromArray([-(2 ** 24)], [1], 'int32', webgpu)).item()).toBe(-(2 ** 24));
  });
  it.skipIf(gpujs === undefined)('gpujs refuses int32 values beyond ±2^24 at upload', () => {
    expect(left(fromArray([2 ** 24 + 1], [1], 'int32', gpujs)).message).toMatch(
      /^fromArray\(\): int32 element 0 is 16777217, beyond ±2\^24, what the gpujs backend holds exactly \(int32 in float32\): use the cpu or reference backend$/,
    );
    expect(() => toBackend(ints([2 ** 30], reference), gpujs!)).toThrow(/beyond ±2\^24/);
    expect(right(fromArray([2 ** 24], [1], 'int32', gpujs)).item()).toBe(2 ** 24);
  });
});

describe('transformations: int32 and bool carry no derivative and keep their dtypes', () => {
  it('a mask from a comparison inside grad is a constant', () => {
    const x = floats([-1, 2, 3], reference, 'float64');
    const g = grad((t: Tensor) => sum(mul(t, cast(greater(t, 0), 'float64'))))(x);
    expect(values(g)).toEqual([0, 1, 1]);
    const { value } = valueAndGrad((t: Tensor) => sum(where(greater(t, 0), t, 0)))(x);
    expect(value.item()).toBe(5);
  });
  it('vmap and jit keep int32 and bool results, and agree with plain calls', () => {
    const x = right(fromArray([0.5, 2, -1, 3, 3, 1], [2, 3], 'float32', cpu2));
    const f = (t: Tensor) => ({ i: add(argmax(t, 0), 1), b: greater(t, 1), n: sum(greater(t, 1)) });
    const plain = f(x);
    const batched = vmap(f)(x);
    expect(batched.i.dtype).toBe('int32');
    expect(values(batched.i)).toEqual([2, 1]);
    expect(batched.b.dtype).toBe('bool');
    expect(values(batched.n)).toEqual([1, 2]);
    const jf = jit(f);
    for (let k = 0; k < 2; k++) {
      const r = jf(x);
      expect(r.i.dtype).toBe('int32');
      expect(values(r.i)).toEqual(values(plain.i));
      expect(r.b.toTypedArray()).toEqual(plain.b.toTypedArray());
      expect(r.n.dtype).toBe('int32');
      expect(r.n.item()).toBe(3);
    }
  });
  it('jvp through masks and indices: their tangents are zero, the float path carries it', () => {
    const x = floats([-1, 2, 3], reference, 'float64');
    const f = (t: Tensor) => mul(take(t, argsort(t)), cast(greater(t, 0), 'float64'));
    const { value, tangent } = jvp(f)(x, floats([1, 10, 100], reference, 'float64'));
    expect(values(value)).toEqual([-0, 2, 3]); // −1 · 0, as in float64
    expect(values(tangent)).toEqual([0, 10, 100]);
  });
  it('vmap of int32 arithmetic equals the per-example calls', () => {
    const a = right(fromArray([2 ** 31 - 1, 5, -7, 65537, 3, -(2 ** 31)], [2, 3], 'int32', reference));
    const b = ints([1, 65537, -1], reference);
    const f = (r: Tensor) => sub(mul(r, b), floorDiv(r, 2));
    const got = vmap(f)(a);
    expect(got.dtype).toBe('int32');
    const rows = [0, 1].map((i) => values(f(ints(values(a).slice(3 * i, 3 * i + 3), reference))));
    expect(values(got)).toEqual(rows.flat());
  });
  it('casts of random floats as Math.trunc with saturation and NaN → 0, on every host backend', () => {
    const ref = (v: number) => (Number.isNaN(v) ? 0 : Math.min(2 ** 31 - 1, Math.max(-(2 ** 31), Math.trunc(v) + 0))); // + 0: an int32 has no −0
    fc.assert(
      fc.property(fc.array(fc.double({ min: -5e9, max: 5e9 }), { minLength: 1, maxLength: 16 }), (v) => {
        for (const be of [reference, cpu2]) {
          const x = floats(v, be, 'float64');
          expect(values(cast(x, 'int32'))).toEqual(v.map(ref));
          expect(values(cast(x, 'bool'))).toEqual(v.map((u) => (u !== 0 ? 1 : 0)));
        }
      }),
      { numRuns: 30 },
    );
  });
  it('jit of int32 arithmetic with its wraparound, as the plain call', () => {
    const f = (a: Tensor, b: Tensor) => mul(add(a, b), b);
    const a = ints([2 ** 31 - 1, 5, -7], cpu1),
      b = ints([1, 65537, 3], cpu1);
    const want = values(f(a, b));
    expect(want).toEqual([Math.imul((2 ** 31 - 1 + 1) | 0, 1), Math.imul(5 + 65537, 65537), -12]);
    const jf = jit(f);
    expect(values(jf(a, b))).toEqual(want);
    expect(values(jf(a, b))).toEqual(want);
  });
});
