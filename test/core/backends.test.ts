/**
 * Every backend's products against the float64 reference, for all transpose
 * forms and odd shapes; the cpu backend's WebAssembly kernels against the host
 * kernels bit for bit; and a whole training step per backend against float64.
 * The gpujs tests need headless-gl and an X display; locally they say why they
 * skip, and in CI (CI=true) a missing GPU path fails instead of skipping.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { valueAndGrad, mapTree } from '../../src/autodiff/index.js';
import {
  add,
  bind,
  cast,
  createCpuBackend,
  createGpujsBackend,
  createReferenceBackend,
  detectGpu,
  isHardwareRenderer,
  Key,
  matmul,
  momentumUpdate,
  mul,
  relu,
  sum,
  toBackend,
  type Backend,
  type Tensor,
} from '../../src/core/index.js';
import { internal } from '../../src/core/tensor.js';
import { denseSet } from '../../src/data/index.js';
import { crossEntropy, fit, mlp, type FitOptions, type MlpParams } from '../../src/nn/index.js';
import { right } from '../helpers.js';
import { requireSystem } from '../system.js';

const gpu = detectGpu();
const runGpu = requireSystem({ suite: 'gpujs backend tests (test/core/backends.test.ts)', found: gpu.context, missing: gpu.summary });

const shapes: Array<[number, number, number]> = [
  [1, 1, 1],
  [7, 3073, 5],
  [129, 5, 3],
  [128, 3072, 128],
  [3072, 128, 128],
  [128, 128, 3072],
  [5, 7, 9],
  [64, 20, 128],
];
const reference = createReferenceBackend();

const maxRelErr = (got: ArrayLike<number>, want: ArrayLike<number>): number => {
  let e = 0;
  for (let i = 0; i < want.length; i++) e = Math.max(e, Math.abs(got[i]! - want[i]!) / (1 + Math.abs(want[i]!)));
  return e;
};
const bits = (t: Tensor): Buffer => {
  const d = t.toTypedArray();
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
};

/** matmul on `be` in float32 against the float64 reference, for every transpose form of each shape. */
const checkProducts = (be: Backend, list: Array<[number, number, number]>) => {
  const key = new Key(11);
  for (const [m, k, n] of list) {
    for (const ta of [false, true])
      for (const tb of [false, true]) {
        const [ka, kb] = key.fold(`${m},${k},${n},${ta},${tb}`).split(2);
        const a = ka!.uniform(ta ? [k, m] : [m, k], -1, 1, 'float32', reference);
        const b = kb!.uniform(tb ? [n, k] : [k, n], -1, 1, 'float32', reference);
        const got = matmul(toBackend(a, be), toBackend(b, be), { transA: ta, transB: tb });
        expect(got.backend).toBe(be);
        const want = matmul(cast(a, 'float64'), cast(b, 'float64'), { transA: ta, transB: tb });
        // float32 accumulation over k terms of size ≤ 1: error grows like √k · 2⁻²⁴.
        expect(maxRelErr(got.toTypedArray(), want.toTypedArray()), `${be.name} ${m}×${k}×${n} transA=${ta} transB=${tb}`).toBeLessThan(
          2e-5 * Math.sqrt(k) + 1e-6,
        );
      }
  }
};

/** Loss and first-layer gradient of the headline network on one batch, float32 on `be`. */
const trainingStep = (be: Backend) => {
  const model = mlp([3072, 128, 20], { activation: 'relu', init: 'he-uniform' });
  const params = mapTree(model.layer.init(new Key(2)), (t) => toBackend(t, be)) as MlpParams;
  const x = toBackend(new Key(3).normal([128, 3072]), be);
  const labels = Array.from({ length: 128 }, (_, i) => (i * 7) % 20);
  const r = valueAndGrad((p: MlpParams) => crossEntropy(model.layer.apply(p, x), labels))(params);
  expect(r.grads[0]!.w.backend).toBe(be);
  return { loss: r.value.item(), g: r.grads[0]!.w.toTypedArray() };
};

const reference64 = () => {
  const model = mlp([3072, 128, 20], { activation: 'relu', init: 'he-uniform' });
  const params = mapTree(model.layer.init(new Key(2)), (t) => cast(toBackend(t, reference), 'float64')) as MlpParams;
  const x = cast(toBackend(new Key(3).normal([128, 3072]), reference), 'float64');
  const labels = Array.from({ length: 128 }, (_, i) => (i * 7) % 20);
  const r = valueAndGrad((p: MlpParams) => crossEntropy(model.layer.apply(p, x), labels))(params);
  return { loss: r.value.item(), g: r.grads[0]!.w.toTypedArray() };
};

describe('auto-detection', () => {
  it('counts only real GPUs as hardware (renderer strings as glxinfo prints them)', () => {
    // Software rasterizers: Mesa's llvmpipe and softpipe, Google's SwiftShader, Mesa's swrast.
    for (const r of ['llvmpipe (LLVM 15.0.6, 256 bits)', 'softpipe', 'SwiftShader Device (Subzero)', 'Software Rasterizer', 'Mesa X11 swrast']) {
      expect(isHardwareRenderer(r), r).toBe(false);
    }
    for (const r of [
      'NVIDIA H100 80GB HBM3/PCIe/SSE2',
      'Mesa Intel(R) UHD Graphics 620 (KBL GT2)',
      'AMD Radeon RX 6800 XT (radeonsi, navi21, LLVM 15.0.6, DRM 3.49)',
    ]) {
      expect(isHardwareRenderer(r), r).toBe(true);
    }
    // Unknown is not hardware: auto-detection then keeps the cpu backend.
    expect(isHardwareRenderer(undefined)).toBe(false);
    expect(isHardwareRenderer('')).toBe(false);
  });
});

describe('placement', () => {
  it('an op runs where its inputs are; inputs on two backends are an error naming both', () => {
    const other = createReferenceBackend();
    const a = new Key(1).normal([3, 3], 'float32', 0, 1, reference);
    expect(relu(a).backend).toBe(reference);
    expect(add(a, 1).backend).toBe(reference); // a number becomes a scalar on a's backend
    expect(() => add(a, toBackend(a, other))).toThrow(/two backends, 'reference' and 'reference'.*toBackend/);
  });
});

describe('cpu backend (WebAssembly SIMD)', () => {
  // The WebAssembly GEMM's own properties (bit-identical on 1 thread and 2): pinned to it, a native BLAS is
  // tested in cpu-native.test.ts.
  const be = createCpuBackend({ threads: 2, blas: 'none' });
  const single = createCpuBackend({ threads: 1, blas: 'none' });
  afterAll(() => {
    be.dispose();
    single.dispose();
  });

  it('matmul agrees with the float64 reference for all transpose forms and odd shapes, on 2 threads and 1', () => {
    checkProducts(be, shapes);
    checkProducts(single, shapes.slice(0, 4));
  });

  it('gives bit-identical products on 1 thread and 2 (so --jobs does not change results)', () => {
    const key = new Key(12);
    // One shape per way of splitting: K (X·W), M (Xᵀ·Δ), N (Δ·Wᵀ), and one too small to split.
    for (const [m, k, n, ta, tb] of [
      [128, 3072, 128, false, false],
      [3072, 128, 128, true, false],
      [128, 128, 3072, false, true],
      [16, 16, 16, false, false],
    ] as const) {
      const [ka, kb] = key.fold(`${m},${k},${n}`).split(2);
      const a = ka!.uniform(ta ? [k, m] : [m, k], -1, 1, 'float32', reference);
      const b = kb!.uniform(tb ? [n, k] : [k, n], -1, 1, 'float32', reference);
      const two = matmul(toBackend(a, be), toBackend(b, be), { transA: ta, transB: tb });
      const one = matmul(toBackend(a, single), toBackend(b, single), { transA: ta, transB: tb });
      expect(bits(one).equals(bits(two)), `${m}×${k}×${n}`).toBe(true);
    }
  });

  // Odd sizes: the SIMD loops' scalar tails run too; the larger one is split between the two threads in chunks.
  it.each([
    [129, 131],
    [513, 259],
  ])('its WebAssembly element-wise kernels equal the host kernels bit for bit (NaN, ±0, odd lengths): %i × %i', (rows, cols) => {
    const n = rows * cols;
    const special = [NaN, 0, -0, Infinity, -Infinity, 1e-40, -1e-40];
    const draw = (k: Key) =>
      internal.adopt(
        Float32Array.from(k.normal([n]).toTypedArray(), (v, i) => (i % 17 === 0 ? special[(i / 17) % special.length]! : v)),
        [rows, cols],
        reference,
      );
    const [kx, kc, kb] = new Key(13).split(3);
    const x = draw(kx!),
      ct = draw(kc!);
    const b = kb!.normal([cols], 'float32', 0, 1, reference);
    const finite = internal.adopt(
      Float32Array.from(x.toTypedArray(), (v) => (Number.isFinite(v) ? v : 0.5)),
      [rows, cols],
      reference,
    );
    const [xc, ctc, bc, fc] = [x, ct, b, finite].map((t) => toBackend(t, be)) as [Tensor, Tensor, Tensor, Tensor];
    // The operands sit in the kernel's memory, so the WebAssembly kernels run.
    for (const t of [xc, ctc, fc]) expect(be.inKernelMemory(internal.storageOf(t).buf as Float32Array)).toBe(true);
    const pairs: Array<[string, Tensor, Tensor]> = [
      ['relu', relu(xc), relu(x)],
      ['reluGrad', bind('reluGrad', [xc, ctc], null), bind('reluGrad', [x, ct], null)],
      ['bias add', add(xc, bc), add(x, b)],
      ['column sums', sum(fc, 0), sum(finite, 0)],
      ['product of one shape', mul(xc, ctc), mul(x, ct)],
      ['sum of one shape', add(xc, ctc), add(x, ct)],
    ];
    for (const [name, got, want] of pairs) {
      expect(be.inKernelMemory(internal.storageOf(got).buf as Float32Array) || name === 'column sums', name).toBe(true);
      expect(bits(got).equals(bits(want)), name).toBe(true);
    }
    // relu keeps NaN (IEEE: NaN propagates), as PyTorch and JAX do.
    const nanAt = x.toTypedArray().findIndex((v) => Number.isNaN(v));
    expect(Number.isNaN(relu(xc).toTypedArray()[nanAt]!)).toBe(true);
  });

  it('the fused momentum update: float64 to 1e-6, and the same bits on 2 threads (chunked) and 1', () => {
    const [kp, kv, kg] = new Key(8).split(3);
    const n = 393217; // odd: the SIMD loop's scalar tail runs too
    const [p, v, g] = [kp!, kv!, kg!].map((k) => k.uniform([n], -1, 1, 'float32', reference)) as [Tensor, Tensor, Tensor];
    for (const nesterov of [false, true]) {
      const hp = { lr: 0.01, gamma: 0.8, l2: 0.001, nesterov };
      const [p64, v64] = momentumUpdate(cast(p, 'float64'), cast(v, 'float64'), cast(g, 'float64'), hp);
      // Every array in the kernel's memory: the update runs there in place, in
      // chunks on both threads (one thread: in turn).
      const [[p2, v2], [p1, v1]] = [be, single].map((backend) => {
        const out = momentumUpdate(toBackend(p, backend), toBackend(v, backend), toBackend(g, backend), hp);
        expect(backend.inKernelMemory(internal.storageOf(out[0]).buf as Float32Array)).toBe(true);
        return out;
      }) as [[Tensor, Tensor], [Tensor, Tensor]];
      expect(maxRelErr(p2.toTypedArray(), p64.toTypedArray())).toBeLessThan(1e-6);
      expect(maxRelErr(v2.toTypedArray(), v64.toTypedArray())).toBeLessThan(1e-6);
      expect(bits(p1).equals(bits(p2))).toBe(true);
      expect(bits(v1).equals(bits(v2))).toBe(true);
    }
  });

  it('a whole training step gives the reference loss and gradients', () => {
    const ref = reference64();
    const got = trainingStep(be);
    expect(Math.abs(got.loss - ref.loss)).toBeLessThan(1e-5 * Math.abs(ref.loss));
    expect(maxRelErr(got.g, ref.g)).toBeLessThan(1e-5);
  });
});

describe.skipIf(!runGpu)('gpujs backend (headless WebGL)', () => {
  it('has a WebGL context (CI must run these tests, not skip them)', () => {
    expect(gpu.context, gpu.summary).toBe(true);
  });

  it('matmul agrees with the float64 reference for all transpose forms and odd shapes', () => {
    const be = createGpujsBackend();
    try {
      checkProducts(
        be,
        shapes.filter(([m, k, n]) => m * k * n <= 128 * 3072 * 128),
      );
    } finally {
      be.dispose();
    }
  });

  it('a whole training step gives the reference loss and gradients, with the tensors on the GPU', () => {
    const be = createGpujsBackend();
    try {
      const ref = reference64();
      const got = trainingStep(be);
      expect(Math.abs(got.loss - ref.loss)).toBeLessThan(1e-4 * Math.abs(ref.loss));
      expect(maxRelErr(got.g, ref.g)).toBeLessThan(1e-4);
    } finally {
      be.dispose();
    }
  });

  it('trains the headline network with its tensors resident: per step only the batch goes up and the loss and logits come down', () => {
    const be = createGpujsBackend();
    try {
      const key = new Key(21);
      const xs = key.normal([384, 3072]).toTypedArray() as Float32Array;
      const ys = Uint8Array.from({ length: 384 }, (_, i) => (i * 13) % 20);
      const model = mlp([3072, 128, 20], { activation: 'relu', init: 'paper' });
      const opts: FitOptions = {
        epochs: 2,
        batchSize: 128,
        shuffle: false,
        seed: 0,
        reduction: 'mean',
        optimizer: { kind: 'momentum', lr: 0.01, momentum: 0.8 },
        l2: { lambda: 0.01, mode: 'gradient', includeBias: true },
      };
      const train = (on: Backend, onStep?: () => void) =>
        right(
          fit(
            model,
            model.layer.init(new Key(0)),
            {
              train: denseSet(xs.slice(0, 256 * 3072), ys.slice(0, 256), 3072, 20, on),
              val: denseSet(xs.slice(256 * 3072), ys.slice(256), 3072, 20, on),
            },
            {
              ...opts,
              backend: on,
              onEvent: (e) => {
                if (e.type === 'batch') onStep?.();
              },
            },
          ),
        );
      const steps: Array<ReturnType<typeof be.transfers>> = [];
      let last = be.transfers();
      const ours = train(be, () => {
        const now = be.transfers();
        steps.push({
          uploads: now.uploads - last.uploads,
          uploadBytes: now.uploadBytes - last.uploadBytes,
          downloads: now.downloads - last.downloads,
          downloadBytes: now.downloadBytes - last.downloadBytes,
        });
        last = now;
      });
      const want = train(reference);
      ours.history.forEach((h, i) => {
        const w = want.history[i]!;
        expect(Math.abs(h.trainLoss - w.trainLoss)).toBeLessThan(1e-4 * w.trainLoss);
        expect(Math.abs(h.valLoss - w.valLoss)).toBeLessThan(1e-4 * w.valLoss);
      });
      expect(maxRelErr(ours.params[0]!.w.toTypedArray(), want.params[0]!.w.toTypedArray())).toBeLessThan(1e-4);
      // The first step of each epoch follows a validation pass; the others are pure training steps.
      for (const s of steps.filter((_, i) => i % 2 === 1)) {
        expect(s.downloads).toBe(2); // the loss and the logits (for accuracy)
        expect(s.downloadBytes).toBeLessThan(64 * 1024); // never the 1.5 MB weights
        expect(s.uploadBytes).toBeLessThan(128 * 3072 * 4 + 64 * 1024); // the batch and its one-hot labels
      }
    } finally {
      be.dispose();
    }
  });
});
