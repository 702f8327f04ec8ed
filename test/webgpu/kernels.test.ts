/**
 * Every kernel primitive on the webgpu backend (float32, WGSL) against the
 * reference backend in float64 on the same (float32-rounded) inputs: the case
 * table in cases.ts (the browser test runs the same table in Chromium), and
 * fast-check properties over broadcasting and GEMM shapes.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { bind, createReferenceBackend, type KernelPrimitive } from '../../src/core/index.js';
import { webgpuFor } from './backend.js';
import { type Case, cases, mm, putOn, r, relNorm, runCase } from './cases.js';

const gpu = webgpuFor('webgpu kernel tests (test/webgpu/kernels.test.ts)');
const reference = createReferenceBackend();
afterAll(() => gpu?.dispose());

/** The primitive on both backends; returns [webgpu values, reference values]. */
const runBoth = <P extends KernelPrimitive>(prim: P, c: Case<P>): [Float32Array | Float64Array, Float32Array | Float64Array] => {
  const { got, want } = runCase(gpu!, reference, prim, c);
  expect(got.backend).toBe(gpu);
  expect(got.shape).toEqual(want.shape);
  return [got.toTypedArray() as Float32Array | Float64Array, want.toTypedArray() as Float32Array | Float64Array];
};

describe.skipIf(gpu === undefined)('webgpu kernels against the float64 reference', () => {
  for (const prim of Object.keys(cases) as KernelPrimitive[]) {
    for (const c of cases[prim] as readonly Case<KernelPrimitive>[]) {
      it(`${prim}: ${c.label}`, () => {
        const [got, want] = runBoth(prim, c);
        expect(got.length).toBe(want.length);
        if (c.exact === true) expect(Array.from(got)).toEqual(Array.from(want, Math.fround));
        else expect(relNorm(got, want), `${prim} ${c.label}`).toBeLessThan(c.tol ?? 1e-5);
      });
    }
  }

  it('broadcasting element-wise ops agree on random shapes (fast-check)', () => {
    // Two shapes that broadcast: each axis of b is a's length or 1, and b may lack leading axes.
    const pair = fc
      .array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 4 })
      .chain((a) => fc.tuple(fc.constant(a), fc.array(fc.boolean(), { minLength: a.length, maxLength: a.length }), fc.integer({ min: 0, max: a.length - 1 })));
    fc.assert(
      fc.property(pair, fc.constantFrom('add', 'mul') as fc.Arbitrary<'add' | 'mul'>, ([a, ones, drop], prim) => {
        const b = a.map((d, i) => (ones[i] ? 1 : d)).slice(drop);
        const c: Case<'add'> = { label: '', params: null, inputs: (put) => [r(put, a, 1), r(put, b, 2)] };
        const [got, want] = runBoth(prim, c);
        expect(relNorm(got, want)).toBeLessThan(1e-6);
      }),
      { numRuns: 20, seed: 24 },
    );
  });

  it('matmul agrees on random sizes and transposes (fast-check)', () => {
    const dims = fc.record({
      m: fc.integer({ min: 1, max: 140 }),
      k: fc.integer({ min: 1, max: 140 }),
      n: fc.integer({ min: 1, max: 140 }),
      ta: fc.boolean(),
      tb: fc.boolean(),
    });
    fc.assert(
      fc.property(dims, ({ m, k, n, ta, tb }) => {
        const [got, want] = runBoth('matmul', mm(m, k, n, ta, tb, m + k + n));
        expect(relNorm(got, want)).toBeLessThan(1e-5);
      }),
      { numRuns: 12, seed: 24 },
    );
  });
});

describe.skipIf(gpu === undefined)('webgpu checks gather and scatterAdd indices on the device', () => {
  const put = putOn(gpu!, 'float32');
  const ref = putOn(reference, 'float64');
  const x = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((v) => v * 1.5);
  const idx = [0, 5, -1, 2, 2.5, -6]; // 5, 2.5 and −6 are bad for an axis of length 5

  it("a bad index fails the next read with the host kernel's message; the result is NaN there and right elsewhere", () => {
    const got = bind('gather', [put(x, [2, 5]), put([...idx, ...idx], [2, 6])], { axis: 1 });
    expect(() => got.toTypedArray()).toThrow(
      /^webgpu: gather: index (5|2\.5|-6) is not an integer in -5\.\.4 \(axis 1 has length 5\), in a kernel queued before this read/,
    );
    // The host backends throw the same words.
    expect(() => bind('gather', [ref(x, [2, 5]), ref([...idx, ...idx], [2, 6])], { axis: 1 })).toThrow(
      /^gather: index 5 is not an integer in -5\.\.4 \(axis 1 has length 5\)$/,
    );
    // Reported once: the same tensor reads now, with NaN for each bad index and the right values for the good ones.
    const values = Array.from(got.toTypedArray());
    const row = (r: number) => idx.map((k) => (k === 5 || k === 2.5 || k === -6 ? Number.NaN : x[r * 5 + (k < 0 ? k + 5 : k)]!));
    expect(values).toEqual([...row(0), ...row(1)]);
  });

  it('scatterAdd leaves bad entries out and reports one; finish() and data() report as reads do', async () => {
    const base = [1, 2, 3, 4, 5, 6, 7, 8];
    const bad = bind('scatterAdd', [put(base, [4, 2]), put([0, 1, 4, 3, 1, 1], [3, 2]), put([10, 20, 30, 40, 50, 60], [3, 2])], { axis: 0 });
    expect(() => gpu!.finish()).toThrow(/^webgpu: scatterAdd: index 4 is not an integer in -4\.\.3 \(axis 0 has length 4\)/);
    // Column 0: 10 to row 0, 30 (index 4) left out, 50 to row 1; column 1: 20 and 60 to row 1, 40 to row 3.
    expect(Array.from(bad.toTypedArray())).toEqual([1 + 10, 2, 3 + 50, 4 + 20 + 60, 5, 6, 7, 8 + 40]);
    const again = bind('gather', [put(x, [10]), put([11], [1])], { axis: 0 });
    await expect(again.data()).rejects.toThrow(/^webgpu: gather: index 11 is not an integer in -10\.\.9/);
    const nan = bind('gather', [put(x, [10]), put([Number.NaN], [1])], { axis: 0 });
    expect(() => nan.toTypedArray()).toThrow(/^webgpu: gather: index NaN is not an integer in -10\.\.9/);
    // Cleared once reported: a good gather afterwards reads without an error.
    expect(Array.from(bind('gather', [put(x, [10]), put([9, -10], [2])], { axis: 0 }).toTypedArray())).toEqual([13.5, 0]);
  });
});
