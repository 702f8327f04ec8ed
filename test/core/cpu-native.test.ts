/**
 * The cpu backend on a native BLAS (src/core/backends/cpu/blas.ts): its
 * products and convolutions (forward and both gradients) against float64
 * references on random shapes, all transposes, odd sizes, strides and padding,
 * on 1 thread and 2; the binding on views into a shared WebAssembly.Memory,
 * in place (the library is handed the views' own addresses); and the fallback
 * to the WebAssembly GEMM where the library cannot load.
 *
 * Needs Debian's libopenblas0-pthread: without it this suite skips with one
 * line, except under CI=true, where .ci/run installs it and a skip would hide
 * the native path, so it fails instead.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { cast, createCpuBackend, createReferenceBackend, Key, matmul, toBackend, type Backend } from '../../src/core/index.js';
import { findBlas } from '../../src/core/backends/cpu/blas.js';
import { gemmStats, nativeGemm } from '../../src/core/backends/cpu/gemm.js';
import { createCpuMemory } from '../../src/core/backends/cpu/memory.js';
import { startThreads } from '../../src/core/backends/cpu/threads.js';
import { internal } from '../../src/core/tensor.js';
import { slidingOut } from '../../src/core/kernels-nd.js';
import { convAndGrads } from '../helpers.js';

const PACKAGE = 'libopenblas0-pthread';
const found = findBlas('openblas');
const missing = 'none' in found ? found.none : undefined;
if (missing !== undefined) {
  if (process.env['CI'] === 'true') throw new Error(`the native BLAS tests need ${PACKAGE} (apt-get install ${PACKAGE}), and CI must run them: ${missing}`);
  console.warn(`native BLAS tests skipped: install ${PACKAGE} (${missing})`);
}
const blas = 'blas' in found ? found.blas : undefined;

const reference = createReferenceBackend();
const relErr = (got: ArrayLike<number>, want: ArrayLike<number>): number => {
  let e = 0;
  for (let i = 0; i < want.length; i++) e = Math.max(e, Math.abs(got[i]! - want[i]!) / (1 + Math.abs(want[i]!)));
  return e;
};

describe.skipIf(blas === undefined)('native BLAS (OpenBLAS) binding', () => {
  const b = blas!;

  it('names the library, its version and configuration, and the kernel it picked', () => {
    expect(b.family).toBe('openblas');
    expect(b.summary).toMatch(/^OpenBLAS \d+\.\d+\.\d+ .*; kernel \w+$/);
  });

  it('sgemm on views into a shared WebAssembly.Memory, at odd offsets, all transposes: float64 reference, in place', () => {
    const memory = new WebAssembly.Memory({ initial: 64, maximum: 1024, shared: true });
    const f32 = new Float32Array(memory.buffer);
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 67 }),
        fc.integer({ min: 1, max: 67 }),
        fc.integer({ min: 1, max: 67 }),
        fc.boolean(),
        fc.boolean(),
        fc.integer({ min: 0, max: 31 }),
        fc.integer({ min: 0, max: 1000 }),
        (m, k, n, ta, tb, skew, seed) => {
          const [a0, b0] = [skew + 1, skew + 1 + m * k + 3];
          const c0 = b0 + k * n + 5;
          const a = f32.subarray(a0, a0 + m * k),
            bb = f32.subarray(b0, b0 + k * n),
            c = f32.subarray(c0, c0 + m * n);
          const u = new Key(seed).uniform([m * k + k * n], -1, 1, 'float64').toTypedArray();
          a.set(u.subarray(0, m * k));
          bb.set(u.subarray(m * k));
          f32[c0 + m * n] = 7; // a guard just past C: must stay
          b.useThreads(seed % 2 === 0 ? 1 : 2);
          b.sgemm(m, n, k, a, ta, bb, tb, c);
          const want = new Float64Array(m * n);
          for (let i = 0; i < m; i++)
            for (let j = 0; j < n; j++) {
              let s = 0;
              for (let p = 0; p < k; p++) s += a[ta ? p * m + i : i * k + p]! * bb[tb ? j * k + p : p * n + j]!;
              want[i * n + j] = s;
            }
          // The result is read back through the memory itself, not through what the call returned.
          expect(relErr(new Float32Array(memory.buffer, c0 * 4, m * n), want)).toBeLessThan(2e-7 * k + 1e-6);
          expect(f32[c0 + m * n]).toBe(7);
        },
      ),
      { numRuns: 60, seed: 23 },
    );
  });

  it("hands the library the typed array's own memory (no copy): addresses of two views differ by their offset", async () => {
    const { createRequire } = await import('node:module');
    const koffi = createRequire(import.meta.url)('koffi') as {
      load(p: string): { func(s: string): (...a: unknown[]) => unknown };
      address(p: unknown): bigint;
    };
    // memset returns the pointer it was given.
    const memset = koffi.load('libc.so.6').func('void *memset(float *s, int c, size_t n)');
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    const f32 = new Float32Array(memory.buffer);
    const p0 = koffi.address(memset(f32.subarray(0, 8), 0, 0)),
      p16 = koffi.address(memset(f32.subarray(16, 24), 0, 0));
    expect(p16 - p0).toBe(64n);
  });

  it('dgemm agrees with a float64 sum', () => {
    const [m, k, n] = [13, 29, 7];
    const u = Float64Array.from(new Key(5).uniform([m * k + k * n], -1, 1, 'float64').toTypedArray());
    const a = u.slice(0, m * k),
      bb = u.slice(m * k),
      c = new Float64Array(m * n);
    b.dgemm(m, n, k, a, false, bb, false, c);
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += a[i * k + p]! * bb[p * n + j]!;
        expect(Math.abs(c[i * n + j]! - s)).toBeLessThan(1e-13);
      }
  });
});

describe.skipIf(blas === undefined)('cpu backend on the native BLAS', () => {
  const two = createCpuBackend({ threads: 2, blas: 'openblas', blasThreads: 2 });
  const one = createCpuBackend({ threads: 1, blas: 'openblas' });
  afterAll(() => {
    two.dispose();
    one.dispose();
  });

  it('says which library it runs on', () => {
    expect(two.blas?.family).toBe('openblas');
    expect(two.description).toContain(`native BLAS ${blas!.summary}`);
  });

  const productCase = fc.record({
    m: fc.integer({ min: 1, max: 150 }),
    k: fc.integer({ min: 1, max: 300 }),
    n: fc.integer({ min: 1, max: 150 }),
    ta: fc.boolean(),
    tb: fc.boolean(),
    seed: fc.integer({ min: 0, max: 1 << 20 }),
  });
  const productsAgree =
    (be: Backend) =>
    ({ m, k, n, ta, tb, seed }: { m: number; k: number; n: number; ta: boolean; tb: boolean; seed: number }) => {
      const [ka, kb] = new Key(seed).split(2);
      const a = ka!.uniform(ta ? [k, m] : [m, k], -1, 1, 'float32', reference);
      const b = kb!.uniform(tb ? [n, k] : [k, n], -1, 1, 'float32', reference);
      const got = matmul(toBackend(a, be), toBackend(b, be), { transA: ta, transB: tb });
      const want = matmul(cast(a, 'float64'), cast(b, 'float64'), { transA: ta, transB: tb });
      expect(got.dtype).toBe('float32');
      expect(relErr(got.toTypedArray(), want.toTypedArray())).toBeLessThan(2e-7 * k + 1e-6);
    };
  it.each([
    ['2 threads', () => two],
    ['1 thread', () => one],
  ] as const)('float32 matmul, all transposes and odd sizes, against float64: %s', (_n, be) => {
    fc.assert(fc.property(productCase, productsAgree(be())), { numRuns: 40, seed: 7 });
  });

  it('a product of operands in the kernel memory (the headline shapes) against float64', () => {
    const [ka, kb] = new Key(9).split(2);
    const x = toBackend(ka!.uniform([128, 3072], -1, 1, 'float32', reference), two);
    const w = toBackend(kb!.uniform([3072, 128], -1, 1, 'float32', reference), two);
    const got = matmul(x, w);
    for (const t of [x, w, got]) expect(two.inKernelMemory(internal.storageOf(t).buf as Float32Array)).toBe(true);
    const want = matmul(cast(toBackend(x, reference), 'float64'), cast(toBackend(w, reference), 'float64'));
    expect(relErr(got.toTypedArray(), want.toTypedArray())).toBeLessThan(2e-7 * 3072 + 1e-6);
  });

  it('two threads on one BLAS thread each: large products as two bands (rows or columns), all transposes, against float64', async () => {
    const banded = createCpuBackend({ threads: 2, blas: 'openblas' }); // blasThreads 1: the worker takes a band
    await vi.waitFor(() => expect(banded.workerRunning()).toBe(true));
    try {
      const before = gemmStats.bands;
      // Row bands (m ≥ n), column bands (n > m), odd band edges, the headline's shapes.
      for (const [m, k, n] of [
        [128, 3072, 128],
        [3072, 128, 128],
        [200, 700, 136],
        [136, 700, 201],
        [97, 1500, 333],
      ] as const) {
        for (const ta of [false, true])
          for (const tb of [false, true]) {
            const [ka, kb] = new Key(m + n + k).split(2);
            const a = ka!.uniform(ta ? [k, m] : [m, k], -1, 1, 'float32', reference);
            const b = kb!.uniform(tb ? [n, k] : [k, n], -1, 1, 'float32', reference);
            const bands = gemmStats.bands;
            const got = matmul(toBackend(a, banded), toBackend(b, banded), { transA: ta, transB: tb });
            expect(gemmStats.bands).toBe(bands + 1);
            const want = matmul(cast(a, 'float64'), cast(b, 'float64'), { transA: ta, transB: tb });
            expect(relErr(got.toTypedArray(), want.toTypedArray())).toBeLessThan(2e-7 * k + 1e-6);
          }
      }
      expect(gemmStats.bands).toBe(before + 20);
      expect(banded.description).toContain('a band (the worker takes the other)');
    } finally {
      banded.dispose();
    }
    // blasBands: false keeps each product one call on this thread.
    const whole = createCpuBackend({ threads: 2, blas: 'openblas', blasBands: false });
    try {
      const [ka, kb] = new Key(5).split(2);
      const bands = gemmStats.bands;
      matmul(toBackend(ka!.uniform([128, 3072], -1, 1, 'float32', reference), whole), toBackend(kb!.uniform([3072, 128], -1, 1, 'float32', reference), whole));
      expect(gemmStats.bands).toBe(bands);
      expect(whole.description).not.toContain('a band');
    } finally {
      whole.dispose();
    }
  });

  it('a worker that cannot bind the library fails its band: this thread computes both bands (the banded bits), nothing hangs', async () => {
    const mem = createCpuMemory();
    const threads = startThreads(mem, 2, { koffi: '/nonexistent/koffi/index.js', file: blas!.file });
    try {
      await vi.waitFor(() => expect(threads.workerRunning()).toBe(true));
      const gemm = nativeGemm(blas!, 1, mem, threads, true);
      const [m, k, n] = [128, 3072, 128];
      const fill = (len: number, seed: number) => {
        const x = mem.alloc('float32', len, false) as Float32Array;
        for (let i = 0; i < len; i++) x[i] = Math.sin(seed * 1000 + i);
        expect(mem.inArena(x)).toBe(true);
        return x;
      };
      const a = fill(m * k, 1),
        b = fill(k * n, 2);
      // What a backend whose worker takes its band gives (the same two library calls, whoever makes them).
      const working = createCpuBackend({ threads: 2, blas: 'openblas' });
      await vi.waitFor(() => expect(working.workerRunning()).toBe(true));
      const banded = gemmStats.bands;
      const want = matmul(
        toBackend(internal.adopt(a.slice(), [m, k], reference), working),
        toBackend(internal.adopt(b.slice(), [k, n], reference), working),
      ).toTypedArray();
      expect(gemmStats.bands).toBe(banded + 1);
      working.dispose();
      const bands = gemmStats.bands;
      for (let i = 0; i < 2; i++) {
        const out = mem.alloc('float32', m * n, false) as Float32Array;
        gemm(a, b, m, k, n, false, false, out);
        expect(Array.from(out)).toEqual(Array.from(want));
      }
      expect(gemmStats.bands).toBe(bands);
    } finally {
      threads.dispose();
    }
  });

  it('float64 matmul on dgemm, to float64 rounding', () => {
    const [ka, kb] = new Key(11).split(2);
    const a = ka!.uniform([37, 53], -1, 1, 'float64', reference),
      b = kb!.uniform([41, 53], -1, 1, 'float64', reference);
    const got = matmul(toBackend(a, two), toBackend(b, two), { transB: true });
    expect(relErr(got.toTypedArray(), matmul(a, b, { transB: true }).toTypedArray())).toBeLessThan(1e-13);
  });

  const convCase = fc
    .record({
      n: fc.integer({ min: 1, max: 6 }),
      c: fc.integer({ min: 1, max: 6 }),
      f: fc.integer({ min: 1, max: 9 }),
      k: fc.constantFrom(1, 3, 5),
      stride: fc.constantFrom(1, 2),
      padding: fc.integer({ min: 0, max: 2 }),
      h: fc.integer({ min: 1, max: 17 }),
      w: fc.integer({ min: 1, max: 17 }),
      seed: fc.integer({ min: 0, max: 1 << 20 }),
    })
    .map((c) => ({ ...c, h: Math.max(c.h, c.k), w: Math.max(c.w, c.k) }));
  const run = convAndGrads;
  it.each([
    ['2 threads', () => two],
    ['1 thread', () => one],
  ] as const)('conv2d and both gradients (im2col on the native sgemm) against float64: %s', (_n, be) => {
    fc.assert(
      fc.property(convCase, (c) => {
        const oh = slidingOut(c.h, c.k, c.stride, c.padding),
          ow = slidingOut(c.w, c.k, c.stride, c.padding);
        const [kx, kw, kc] = new Key(c.seed).split(3);
        const x = kx!.uniform([c.n, c.c, c.h, c.w], -1, 1, 'float32', reference);
        const w = kw!.uniform([c.f, c.c, c.k, c.k], -1, 1, 'float32', reference);
        const ct = kc!.uniform([c.n, c.f, oh, ow], -1, 1, 'float32', reference);
        const p = { stride: c.stride, padding: c.padding };
        const got = run(be(), x, w, ct, p);
        const want = run(reference, cast(x, 'float64'), cast(w, 'float64'), cast(ct, 'float64'), p);
        const terms = { y: c.c * c.k * c.k, dx: c.f * c.k * c.k, dw: c.n * oh * ow };
        for (const name of ['y', 'dx', 'dw'] as const) {
          expect(got[name].dtype).toBe('float32');
          expect(got[name].shape).toEqual(want[name].shape);
          expect(relErr(got[name].toTypedArray(), want[name].toTypedArray()), name).toBeLessThan(2e-7 * terms[name] + 1e-6);
        }
      }),
      { numRuns: 40, seed: 13 },
    );
  });

  it('a CIFAR-sized convolution, operands in the kernel memory, against float64', () => {
    const c = { n: 16, c: 16, h: 32, w: 32, f: 32, k: 3 };
    const [kx, kw, kc] = new Key(17).split(3);
    const x = kx!.uniform([c.n, c.c, c.h, c.w], -1, 1, 'float32', reference);
    const w = kw!.uniform([c.f, c.c, c.k, c.k], -1, 1, 'float32', reference);
    const ct = kc!.uniform([c.n, c.f, c.h, c.w], -1, 1, 'float32', reference);
    const p = { stride: 1, padding: 1 };
    const got = run(two, x, w, ct, p),
      want = run(reference, cast(x, 'float64'), cast(w, 'float64'), cast(ct, 'float64'), p);
    expect(relErr(got.y.toTypedArray(), want.y.toTypedArray())).toBeLessThan(2e-7 * 144 + 1e-6);
    expect(relErr(got.dx.toTypedArray(), want.dx.toTypedArray())).toBeLessThan(2e-7 * 288 + 1e-6);
    expect(relErr(got.dw.toTypedArray(), want.dw.toTypedArray())).toBeLessThan(2e-7 * 16 * 1024 + 1e-6);
  });
});

describe('the fallback: no library, the WebAssembly GEMM', () => {
  it('TAPEGRAD_BLAS pointing the loader at nothing: the backend says so and runs the WebAssembly kernels', () => {
    vi.stubEnv('TAPEGRAD_BLAS', '/nonexistent/libtapegrad-no-blas.so');
    const be = createCpuBackend({ threads: 1 });
    try {
      expect(be.blas).toBeUndefined();
      expect(be.blasReason).toMatch(
        /no BLAS library loaded \(TAPEGRAD_BLAS=\/nonexistent\/libtapegrad-no-blas\.so; tried \/nonexistent\/libtapegrad-no-blas\.so: /,
      );
      expect(be.description).toMatch(/^cpu: WebAssembly SIMD GEMM \(.*no native BLAS: no BLAS library loaded/);
      // It computes: the WebAssembly GEMM against float64.
      const [ka, kb] = new Key(3).split(2);
      const a = ka!.uniform([33, 65], -1, 1, 'float32', reference),
        b = kb!.uniform([65, 17], -1, 1, 'float32', reference);
      const got = matmul(toBackend(a, be), toBackend(b, be));
      expect(relErr(got.toTypedArray(), matmul(cast(a, 'float64'), cast(b, 'float64')).toTypedArray())).toBeLessThan(2e-7 * 65 + 1e-6);
    } finally {
      be.dispose();
      vi.unstubAllEnvs();
    }
  });

  it('TAPEGRAD_BLAS=none: the WebAssembly GEMM, by choice', () => {
    vi.stubEnv('TAPEGRAD_BLAS', 'none');
    const be = createCpuBackend({ threads: 1 });
    try {
      expect(be.blas).toBeUndefined();
      expect(be.description).toContain('no native BLAS: TAPEGRAD_BLAS=none');
    } finally {
      be.dispose();
      vi.unstubAllEnvs();
    }
  });

  it('the option wins over the environment', () => {
    vi.stubEnv('TAPEGRAD_BLAS', 'openblas');
    const be = createCpuBackend({ threads: 1, blas: 'none' });
    try {
      expect(be.blas).toBeUndefined();
    } finally {
      be.dispose();
      vi.unstubAllEnvs();
    }
  });
});
