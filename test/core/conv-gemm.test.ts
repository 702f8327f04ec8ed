/**
 * The cpu backend's float32 convolutions (im2col / col2im onto the GEMM,
 * src/core/backends/conv-gemm.ts) against the float64 reference loops, over
 * random shapes; bit for bit the same on 1 thread and 2; float64 stays on the
 * host loops.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { cast, createCpuBackend, createReferenceBackend, Key, type Tensor } from '../../src/core/index.js';
import { slidingOut } from '../../src/core/kernels-nd.js';
import { convAndGrads } from '../helpers.js';

const reference = createReferenceBackend();
// The WebAssembly GEMM's path (bit for bit on 1 thread and 2); the native BLAS's is in cpu-native.test.ts.
const two = createCpuBackend({ threads: 2, blas: 'none' });
const one = createCpuBackend({ threads: 1, blas: 'none' });
afterAll(() => {
  two.dispose();
  one.dispose();
});

const bits = (t: Tensor): Buffer => {
  const d = t.toTypedArray();
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
};
const maxRelErr = (got: ArrayLike<number>, want: ArrayLike<number>): number => {
  let e = 0;
  for (let i = 0; i < want.length; i++) e = Math.max(e, Math.abs(got[i]! - want[i]!) / (1 + Math.abs(want[i]!)));
  return e;
};

interface Case {
  n: number;
  c: number;
  h: number;
  w: number;
  f: number;
  k: number;
  stride: number;
  padding: number;
}

/** The forward and both gradient primitives on `be`, from float32 operands made on the reference backend. */
const run = convAndGrads;

const operands = (key: Key, c: Case) => {
  const oh = slidingOut(c.h, c.k, c.stride, c.padding),
    ow = slidingOut(c.w, c.k, c.stride, c.padding);
  const [kx, kw, kc] = key.split(3);
  return {
    x: kx!.uniform([c.n, c.c, c.h, c.w], -1, 1, 'float32', reference),
    w: kw!.uniform([c.f, c.c, c.k, c.k], -1, 1, 'float32', reference),
    ct: kc!.uniform([c.n, c.f, oh, ow], -1, 1, 'float32', reference),
  };
};

/** Random shapes: kernel 1, 3 or 5, stride 1 or 2, padding 0–2, odd sizes, where the kernel fits. */
const randomCases = (count: number): Case[] => {
  const u = new Key(41).uniform([count, 8], 0, 1, 'float64').toTypedArray();
  const cases: Case[] = [];
  for (let i = 0; i < count; i++) {
    const r = (j: number, lo: number, hi: number) => lo + Math.floor(u[i * 8 + j]! * (hi - lo + 1));
    const k = [1, 3, 5][r(0, 0, 2)]!,
      padding = r(1, 0, 2),
      stride = r(2, 1, 2);
    const h = Math.max(k, r(3, 1, 13)),
      w = Math.max(k, r(4, 1, 12));
    cases.push({ n: r(5, 1, 5), c: r(6, 1, 6), h, w, f: r(7, 1, 7), k, stride, padding });
  }
  return cases;
};

describe('cpu backend convolutions on the GEMM', () => {
  // Fixed cases: CIFAR's first layer; 1×1; stride 2 with padding 2 on odd sizes;
  // and 24 images of 16×32×32 under a 5×5 kernel: more column bytes than one
  // group holds, so groups are joined (two for the forward, the filter gradient summed).
  const fixed: Case[] = [
    { n: 4, c: 3, h: 32, w: 32, f: 16, k: 3, stride: 1, padding: 1 },
    { n: 3, c: 5, h: 7, w: 9, f: 4, k: 1, stride: 1, padding: 0 },
    { n: 2, c: 3, h: 11, w: 13, f: 5, k: 5, stride: 2, padding: 2 },
    { n: 24, c: 16, h: 32, w: 32, f: 8, k: 5, stride: 1, padding: 2 },
  ];

  it('conv2d, its input gradient and its filter gradient equal the float64 reference within float32 rounding', () => {
    const key = new Key(40);
    for (const c of [...fixed, ...randomCases(30)]) {
      const { x, w, ct } = operands(key.fold(JSON.stringify(c)), c);
      const p = { stride: c.stride, padding: c.padding };
      const got = run(two, x, w, ct, p);
      const want = run(reference, cast(x, 'float64'), cast(w, 'float64'), cast(ct, 'float64'), p);
      // Sums of at most C·K² (forward), F·K² (input) or N·OH·OW (filters) products of terms ≤ 1.
      const terms = { y: c.c * c.k * c.k, dx: c.f * c.k * c.k, dw: c.n * c.h * c.w };
      for (const name of ['y', 'dx', 'dw'] as const) {
        expect(got[name].dtype).toBe('float32');
        expect(got[name].shape).toEqual(want[name].shape);
        expect(maxRelErr(got[name].toTypedArray(), want[name].toTypedArray()), `${name} ${JSON.stringify(c)}`).toBeLessThan(2e-6 * terms[name] + 1e-6);
      }
    }
  });

  it('gives bit-identical results on 1 thread and 2', () => {
    const key = new Key(42);
    for (const c of [fixed[0]!, fixed[3]!, { n: 128, c: 16, h: 16, w: 16, f: 32, k: 3, stride: 1, padding: 1 }]) {
      const { x, w, ct } = operands(key.fold(JSON.stringify(c)), c);
      const p = { stride: c.stride, padding: c.padding };
      const a = run(two, x, w, ct, p),
        b = run(one, x, w, ct, p);
      for (const name of ['y', 'dx', 'dw'] as const) expect(bits(a[name]).equals(bits(b[name])), `${name} ${JSON.stringify(c)}`).toBe(true);
    }
  });

  it('runs float64 on the host loops: the same bits as the reference backend', () => {
    const c = fixed[2]!;
    const { x, w, ct } = operands(new Key(43), c);
    const p = { stride: c.stride, padding: c.padding };
    const got = run(two, cast(x, 'float64'), cast(w, 'float64'), cast(ct, 'float64'), p);
    const want = run(reference, cast(x, 'float64'), cast(w, 'float64'), cast(ct, 'float64'), p);
    for (const name of ['y', 'dx', 'dw'] as const) {
      expect(got[name].dtype).toBe('float64');
      expect(bits(got[name]).equals(bits(want[name])), name).toBe(true);
    }
  });
});
