/**
 * The backends' float32 fast paths driven through the tape: random compositions
 * (matmul in every transpose form, the bias add, an activation, a loss head, and
 * the fused momentum update on the gradients) run through `valueAndGrad` on each
 * backend in float32 and on the reference backend in float64, with shapes on
 * both sides of every size threshold:
 * - 16,384 floats (64 KiB): smaller tensors stay in ordinary memory on the cpu
 *   backend, larger ones live in its WebAssembly memory (127² below, 130² above);
 * - 2²⁰ multiply-adds: smaller products run on one thread, larger ones in chunks
 *   on two (127·127·64 below, 130·130·64 and up above);
 * - 65,536 elements: the momentum update runs on one thread below, two above (260²).
 * Values agree within float32 tolerance, measured as a relative norm (a relu kink
 * that float32 rounding moves across 0 changes one term of many, not the norm).
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { valueAndGrad } from '../../src/autodiff/index.js';
import {
  adamUpdate,
  add,
  cast,
  createCpuBackend,
  createGpujsBackend,
  createReferenceBackend,
  detectGpu,
  Key,
  logSumExp,
  matmul,
  max,
  mean,
  momentumUpdate,
  mul,
  relu,
  sigmoid,
  softmaxCrossEntropy,
  sum,
  tanh,
  tidy,
  toBackend,
  type Backend,
  type Tensor,
} from '../../src/core/index.js';
import { requireSystem } from '../system.js';

const reference = createReferenceBackend();
const cpu2 = createCpuBackend({ threads: 2 });
const cpu1 = createCpuBackend({ threads: 1 });
const gpu = detectGpu();
const gpujs = requireSystem({ suite: 'gpujs properties (test/core/backends.prop.test.ts)', found: gpu.context, missing: gpu.summary })
  ? createGpujsBackend()
  : undefined;
afterAll(() => {
  cpu2.dispose();
  cpu1.dispose();
  gpujs?.dispose();
});

const acts = { relu, tanh, sigmoid } as const;
type Case = {
  m: number;
  k: number;
  n: number;
  transA: boolean;
  transB: boolean;
  act: keyof typeof acts;
  head: 'squares' | 'logSumExp' | 'crossEntropy' | 'max';
  seed: number;
};
const caseArb: fc.Arbitrary<Case> = fc.record({
  m: fc.constantFrom(3, 127, 130, 260),
  k: fc.constantFrom(5, 64, 130),
  n: fc.constantFrom(4, 127, 130, 260),
  transA: fc.boolean(),
  transB: fc.boolean(),
  act: fc.constantFrom('relu', 'tanh', 'sigmoid'),
  head: fc.constantFrom('squares', 'logSumExp', 'crossEntropy', 'max'),
  seed: fc.integer({ min: 0, max: 1 << 20 }),
});

/** ‖a − b‖ / ‖b‖ (0 when both vanish). */
const relNorm = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let d = 0,
    r = 0;
  for (let i = 0; i < b.length; i++) {
    d += (a[i]! - b[i]!) ** 2;
    r += b[i]! ** 2;
  }
  return r === 0 ? Math.sqrt(d) : Math.sqrt(d / r);
};

/** Loss, gradients and one momentum step of the case on `be`, in `dtype`; all read back as plain arrays. */
const evaluateCase = (c: Case, be: Backend, dtype: 'float32' | 'float64') =>
  tidy(() => {
    const [kx, kw, kb, kv] = new Key(c.seed).split(4);
    const put = (t: Tensor) => toBackend(cast(t, dtype), be);
    const x = put(kx!.normal(c.transA ? [c.k, c.m] : [c.m, c.k], 'float32', 0, 1, reference));
    const params = {
      w: put(kw!.normal(c.transB ? [c.n, c.k] : [c.k, c.n], 'float32', 0, 1 / Math.sqrt(c.k), reference)),
      b: put(kb!.normal([c.n], 'float32', 0, 0.1, reference)),
    };
    const labels = Array.from({ length: c.m }, (_, i) => (i * 7 + c.seed) % c.n);
    const f = (p: typeof params): Tensor => {
      const a = acts[c.act](add(matmul(x, p.w, { transA: c.transA, transB: c.transB }), p.b));
      switch (c.head) {
        case 'squares':
          return mul(sum(mul(a, a)), 1 / c.m);
        case 'logSumExp':
          return mean(logSumExp(a, 1));
        case 'crossEntropy':
          return softmaxCrossEntropy(a, labels);
        case 'max':
          return mean(max(a, 1));
      }
    };
    const { value, grads } = valueAndGrad(f)(params);
    const velocity = put(kv!.normal(params.w.shape as number[], 'float32', 0, 0.01, reference));
    const [w2, v2] = momentumUpdate(params.w, velocity, grads.w, { lr: 0.05, gamma: 0.9, l2: 0.01, nesterov: c.seed % 2 === 0 });
    // One fused AdamW step from random moments (the second positive), at step 3's bias corrections.
    const m1 = put(kv!.fold('m').normal(params.w.shape as number[], 'float32', 0, 0.01, reference));
    const s1 = put(kv!.fold('v').uniform(params.w.shape as number[], 1e-6, 1e-3, 'float32', reference));
    const [wa, ma, va] = adamUpdate(params.w, m1, s1, grads.w, {
      lr: 0.01,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      l2: 0.01,
      decay: 1 - 0.01 * 0.05,
      c1: 1 / (1 - 0.9 ** 3),
      c2: 1 / (1 - 0.999 ** 3),
    });
    for (const t of [value, grads.w, grads.b, w2, v2, wa, ma, va]) expect(t.backend).toBe(be);
    return {
      loss: value.item(),
      gw: grads.w.toTypedArray(),
      gb: grads.b.toTypedArray(),
      w2: w2.toTypedArray(),
      v2: v2.toTypedArray(),
      wa: wa.toTypedArray(),
      ma: ma.toTypedArray(),
      va: va.toTypedArray(),
    };
  });

const agrees = (be: Backend, tol: number) => (c: Case) => {
  const got = evaluateCase(c, be, 'float32');
  const want = evaluateCase(c, reference, 'float64');
  const label = `${be.name} ${JSON.stringify(c)}`;
  expect(Math.abs(got.loss - want.loss), `loss ${label}`).toBeLessThan(tol * (1 + Math.abs(want.loss)));
  expect(relNorm(got.gw, want.gw), `dL/dw ${label}`).toBeLessThan(tol);
  expect(relNorm(got.gb, want.gb), `dL/db ${label}`).toBeLessThan(tol);
  expect(relNorm(got.w2, want.w2), `momentum w' ${label}`).toBeLessThan(tol);
  expect(relNorm(got.v2, want.v2), `momentum v' ${label}`).toBeLessThan(tol);
  expect(relNorm(got.wa, want.wa), `adam w' ${label}`).toBeLessThan(tol);
  expect(relNorm(got.ma, want.ma), `adam m' ${label}`).toBeLessThan(tol);
  expect(relNorm(got.va, want.va), `adam v' ${label}`).toBeLessThan(tol);
};

describe('float32 compositions through the tape equal the float64 reference', () => {
  it('cpu backend, 2 threads (kernel memory, chunked products and updates)', () => {
    fc.assert(fc.property(caseArb, agrees(cpu2, 2e-5)), { numRuns: 24, seed: 1 });
  });
  it('cpu backend, 1 thread', () => {
    fc.assert(fc.property(caseArb, agrees(cpu1, 2e-5)), { numRuns: 12, seed: 2 });
  });
  it('reference backend in float32', () => {
    fc.assert(
      fc.property(
        caseArb.filter((c) => c.m * c.k * c.n <= 130 * 130 * 130),
        agrees(reference, 2e-5),
      ),
      { numRuns: 8, seed: 3 },
    );
  });
  it.skipIf(gpujs === undefined)('gpujs backend (tensors resident on the GPU)', () => {
    // The GPU's exp, log and tanh are less exact than the host's: a looser, still float32-sized bound.
    fc.assert(
      fc.property(
        caseArb.filter((c) => c.m * c.k * c.n <= 130 * 130 * 260),
        agrees(gpujs!, 2e-4),
      ),
      { numRuns: 6, seed: 4 },
    );
  });
});
