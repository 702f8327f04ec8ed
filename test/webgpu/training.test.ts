/**
 * The webgpu backend under the transformations and in training: gradients
 * through the tape (an MLP head and a small CNN with convolution, pooling and
 * batch normalization) against the float64 reference; `fit` on a tiny MLP
 * against the cpu backend, with the transfers of each step counted (the batch
 * and its labels up, one read of the loss and the correct count down); async
 * reads; what float64 does. The adapter-choice helpers are tested without a
 * GPU (plain functions).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { valueAndGrad } from '../../src/autodiff/index.js';
import {
  adamUpdate,
  add,
  avgPool2d,
  batchNormTrain,
  cast,
  conv2d,
  createCpuBackend,
  createReferenceBackend,
  createWebgpuBackend,
  fromArray,
  Key,
  matmul,
  maxPool2d,
  mean,
  momentumUpdate,
  mul,
  relu,
  reshape,
  softmaxCrossEntropy,
  sum,
  tanh,
  toBackend,
  type Backend,
  type Tensor,
} from '../../src/core/index.js';
import { autoChoice } from '../../src/core/backend.js';
import { isHardwareAdapter, parseWebgpuEnv } from '../../src/core/backends/webgpu/index.js';
import { forgetWebgpuProbe, probeWebgpu } from '../../src/core/backends/webgpu/probe.js';
import { denseSet } from '../../src/data/index.js';
import { fit, mlp, type FitOptions } from '../../src/nn/index.js';
import { right } from '../helpers.js';
import { relNorm, seeded, webgpuFor } from './backend.js';
import { trainSmallCnn } from './cases.js';

const gpu = webgpuFor('webgpu training tests (test/webgpu/training.test.ts)');
const reference = createReferenceBackend();
const cpu = createCpuBackend({ threads: 1 });
afterAll(() => {
  gpu?.dispose();
  cpu.dispose();
});

const put =
  (be: Backend, dtype: 'float32' | 'float64') =>
  (shape: number[], seed: number, lo = -1, hi = 1): Tensor =>
    right(
      fromArray(
        seeded(
          shape.reduce((p, d) => p * d, 1),
          seed,
          lo,
          hi,
        ).map(Math.fround),
        shape,
        dtype,
        be,
      ),
    );

/** Loss and gradients of `f` on webgpu (float32) and the reference (float64), from the same parameters. */
const bothGrads = <P extends Record<string, Tensor>>(make: (t: ReturnType<typeof put>) => { params: P; f: (p: P) => Tensor }) => {
  const run = (be: Backend, dtype: 'float32' | 'float64') => {
    const { params, f } = make(put(be, dtype));
    const { value, grads } = valueAndGrad(f)(params);
    expect(value.backend).toBe(be);
    return { loss: value.item(), grads: Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, (g as Tensor).toTypedArray()])) };
  };
  return { got: run(gpu!, 'float32'), want: run(reference, 'float64') };
};

describe.skipIf(gpu === undefined)('webgpu through the tape', () => {
  it('an MLP head: matmul (both transposes in the VJP), bias, tanh, cross-entropy', () => {
    const labels = [3, 0, 7, 2, 2, 9, 1, 5, 4, 6, 8, 0];
    const { got, want } = bothGrads((t) => ({
      params: { w1: t([20, 33], 1), b1: t([33], 2, -0.1, 0.1), w2: t([33, 10], 3) },
      f: (p: { w1: Tensor; b1: Tensor; w2: Tensor }) => softmaxCrossEntropy(matmul(tanh(add(matmul(t([12, 20], 4), p.w1), p.b1)), p.w2), labels),
    }));
    expect(Math.abs(got.loss - want.loss)).toBeLessThan(1e-5 * Math.abs(want.loss));
    for (const k of Object.keys(want.grads)) expect(relNorm(got.grads[k]!, want.grads[k]!), k).toBeLessThan(1e-5);
  });

  it('a small CNN: conv2d (stride 1 and 2), relu, max and average pooling, batch normalization', () => {
    const { got, want } = bothGrads((t) => ({
      params: { k1: t([6, 3, 3, 3], 1, -0.3, 0.3), g: t([6], 2, 0.8, 1.2), b: t([6], 3, -0.1, 0.1), k2: t([4, 6, 3, 3], 4, -0.3, 0.3) },
      f: (p: { k1: Tensor; g: Tensor; b: Tensor; k2: Tensor }) => {
        const x = t([2, 3, 12, 12], 5);
        const h = maxPool2d(relu(batchNormTrain(conv2d(x, p.k1, { padding: 1 }), p.g, p.b).y), 2);
        const y = avgPool2d(conv2d(h, p.k2, { stride: 2, padding: 1 }), 3);
        return mean(mul(y, y));
      },
    }));
    expect(Math.abs(got.loss - want.loss)).toBeLessThan(1e-4 * Math.abs(want.loss));
    // Float32 convolutions and batch statistics against float64: a float32-sized bound.
    for (const k of Object.keys(want.grads)) expect(relNorm(got.grads[k]!, want.grads[k]!), k).toBeLessThan(1e-4);
  });
});

describe.skipIf(gpu === undefined)('webgpu fused optimizer updates', () => {
  it('momentum (plain and Nesterov) and AdamW in one dispatch each equal the float64 reference', () => {
    const run = (be: Backend, dtype: 'float32' | 'float64') => {
      const t = put(be, dtype);
      const p = t([70, 33], 1),
        v = t([70, 33], 2, -0.01, 0.01),
        g = t([70, 33], 3),
        m = t([70, 33], 4, -0.01, 0.01),
        s = t([70, 33], 5, 1e-6, 1e-3);
      const [p1, v1] = momentumUpdate(p, v, g, { lr: 0.05, gamma: 0.9, l2: 0.01, nesterov: false });
      const [p2, v2] = momentumUpdate(p, v, g, { lr: 0.05, gamma: 0.9, l2: 0, nesterov: true });
      const [p3, m3, s3] = adamUpdate(p, m, s, g, {
        lr: 0.01,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        l2: 0.01,
        decay: 1 - 0.01 * 0.05,
        c1: 1 / (1 - 0.9 ** 3),
        c2: 1 / (1 - 0.999 ** 3),
      });
      return [p1, v1, p2, v2, p3, m3, s3].map((x) => x.toTypedArray());
    };
    const got = run(gpu!, 'float32'),
      want = run(reference, 'float64');
    got.forEach((x, i) => {
      expect(relNorm(x, want[i]!), `output ${i}`).toBeLessThan(1e-6);
    });
  });
});

describe.skipIf(gpu === undefined)('webgpu in fit', () => {
  it("a tiny MLP trains to the cpu backend's losses, and each step reads only its loss and correct count", () => {
    const key = new Key(5);
    const xs = key.normal([192, 24], 'float32', 0, 1, reference).toTypedArray() as Float32Array;
    const ys = Uint8Array.from({ length: 192 }, (_, i) => (i * 7) % 5);
    const model = mlp([24, 32, 5], { activation: 'relu', init: 'glorot-uniform' });
    const opts: FitOptions = { epochs: 3, batchSize: 32, shuffle: true, seed: 1, optimizer: { kind: 'momentum', lr: 0.05, momentum: 0.9 } };
    const steps: { downloads: number; downloadBytes: number; uploadBytes: number }[] = [];
    const train = (on: Backend, onStep?: () => void) =>
      right(
        fit(
          model,
          model.layer.init(new Key(0)),
          {
            train: denseSet(xs.slice(0, 128 * 24), ys.slice(0, 128), 24, 5, on),
            val: denseSet(xs.slice(128 * 24), ys.slice(128), 24, 5, on),
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
    let last = gpu!.transfers();
    const ours = train(gpu!, () => {
      const now = gpu!.transfers();
      steps.push({
        downloads: now.downloads - last.downloads,
        downloadBytes: now.downloadBytes - last.downloadBytes,
        uploadBytes: now.uploadBytes - last.uploadBytes,
      });
      last = now;
    });
    const want = train(cpu);
    expect(ours.history).toHaveLength(3);
    ours.history.forEach((h, i) => {
      const w = want.history[i]!;
      expect(Math.abs(h.trainLoss - w.trainLoss), `epoch ${i + 1} train loss`).toBeLessThan(1e-4 * w.trainLoss);
      expect(Math.abs(h.valLoss - w.valLoss), `epoch ${i + 1} val loss`).toBeLessThan(1e-4 * w.valLoss);
      expect(h.trainAccuracy).toBe(w.trainAccuracy);
    });
    expect(relNorm(ours.params[0]!.w.toTypedArray(), want.params[0]!.w.toTypedArray())).toBeLessThan(1e-4);
    // Steps after the first of an epoch follow other steps only (the first follows the validation pass).
    const pure = steps.filter((_, i) => i % 4 !== 0);
    expect(pure.length).toBeGreaterThan(0);
    for (const s of pure) {
      expect(s.downloads, 'one read per step').toBe(1);
      expect(s.downloadBytes, 'the loss and the correct count').toBe(8);
      // The batch (32 × 24 floats) and its labels (as indices and as floats), never the weights.
      expect(s.uploadBytes).toBeLessThan(32 * 24 * 4 + 1024);
      expect(s.uploadBytes).toBeGreaterThanOrEqual(32 * 24 * 4);
    }
  });
});

describe.skipIf(gpu === undefined)('webgpu trains a small CNN', () => {
  const agree = (optimizer: FitOptions['optimizer'], tol: number) => {
    const ours = trainSmallCnn(gpu!, reference, optimizer);
    const want = trainSmallCnn(reference, reference, optimizer);
    ours.forEach((h, i) => {
      const w = want[i]!;
      expect(Math.abs(h.trainLoss - w.trainLoss), `epoch ${i + 1} train loss`).toBeLessThan(tol * w.trainLoss);
      expect(Math.abs(h.valLoss - w.valLoss), `epoch ${i + 1} val loss`).toBeLessThan(tol * w.valLoss);
    });
    // It learned something (the losses moved), so agreeing is not agreeing on a constant.
    expect(ours[1]!.trainLoss).not.toBeCloseTo(ours[0]!.trainLoss, 3);
  };

  it("conv, batch norm, relu, pooling, dense with momentum: 2 epochs match the reference backend's losses within 1e-4", () => {
    agree({ kind: 'momentum', lr: 0.05, momentum: 0.9 }, 1e-4);
  });

  it('the same with Adam (its step counter a float64 scalar on the host): within 1e-3', () => {
    // Adam divides by √v: float32 summation-order differences in small gradients move its steps more than momentum's.
    agree({ kind: 'adam', lr: 0.01 }, 1e-3);
  });
});

describe.skipIf(gpu === undefined)('webgpu reads and dtypes', () => {
  it('data() resolves to the values toTypedArray() reads, without blocking', async () => {
    const x = put(gpu!, 'float32')([300, 7], 9);
    const y = mul(sum(x, [1]), 2);
    const pending = y.data();
    expect(pending).toBeInstanceOf(Promise);
    const got = await pending;
    expect(Array.from(got)).toEqual(Array.from(y.toTypedArray()));
    const want = mul(sum(toBackend(cast(x, 'float32'), reference), [1]), 2).toTypedArray();
    expect(relNorm(got, want)).toBeLessThan(1e-6);
  });

  it('keeps float64 made from host values on the host, exact, and moves it only by an explicit cast', () => {
    const before = gpu!.transfers();
    const a = put(gpu!, 'float64')([5, 3], 1),
      b = put(gpu!, 'float64')([3], 2);
    const want = add(mul(put(reference, 'float64')([5, 3], 1), 2), put(reference, 'float64')([3], 2)).toTypedArray();
    const got = add(mul(a, 2), b);
    expect(got.dtype).toBe('float64');
    expect(got.backend).toBe(gpu);
    expect(got.toTypedArray()).toEqual(want); // the host kernels: the same bits as the reference backend
    expect(gpu!.transfers().uploads - before.uploads, 'nothing went to the device').toBe(0);
    // The cast is the move: float32 on the device, and back.
    const down = cast(got, 'float32');
    expect(gpu!.transfers().uploads - before.uploads).toBe(1);
    expect(Array.from(cast(down, 'float64').toTypedArray())).toEqual(Array.from(want, Math.fround));
  });

  it('keeps shapes of views and empty tensors', () => {
    const x = put(gpu!, 'float32')([2, 0, 3], 1);
    expect(sum(x, [1]).toTypedArray()).toEqual(new Float32Array(6));
    expect(reshape(put(gpu!, 'float32')([2, 3], 2), [3, 2]).shape).toEqual([3, 2]);
  });
});

describe.skipIf(gpu === undefined)('webgpu when no adapter fits', () => {
  it('an adapter that cannot be had is one line naming what to install', () => {
    let message = '';
    try {
      createWebgpuBackend({ backend: 'no-such-backend' });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/^the webgpu backend found no WebGPU adapter \(backend=no-such-backend: .*\): on a GPU machine install its Vulkan driver/);
    expect(message).not.toContain('\n');
  });

  it('auto probes the adapter and does not choose a software one', () => {
    // TAPEGRAD_WEBGPU makes the probe start Dawn even without a Vulkan loader: this machine's adapter is then the one probed.
    const before = process.env['TAPEGRAD_WEBGPU'];
    process.env['TAPEGRAD_WEBGPU'] = 'backend=opengles,featureLevel=compatibility';
    forgetWebgpuProbe();
    try {
      const probe = probeWebgpu();
      expect(probe.backend, probe.summary).toBeDefined();
      expect(probe.hardware).toBe(gpu!.hardware);
      if (!probe.hardware) expect(autoChoice().name).not.toBe('webgpu');
      else expect(autoChoice().name).toBe('webgpu');
    } finally {
      if (before === undefined) delete process.env['TAPEGRAD_WEBGPU'];
      else process.env['TAPEGRAD_WEBGPU'] = before;
      forgetWebgpuProbe();
    }
  });
});

describe('choosing a WebGPU adapter (no GPU needed)', () => {
  it('reads TAPEGRAD_WEBGPU and rejects unknown keys with the known ones', () => {
    expect(parseWebgpuEnv('backend=opengles,featureLevel=compatibility')).toEqual({ backend: 'opengles', featureLevel: 'compatibility' });
    expect(parseWebgpuEnv('backend=vulkan, adapter=NVIDIA H100, flag=enable-dawn-features=allow_unsafe_apis')).toEqual({
      backend: 'vulkan',
      adapter: 'NVIDIA H100',
      dawnFlags: ['enable-dawn-features=allow_unsafe_apis'],
    });
    expect(() => parseWebgpuEnv('backnd=vulkan')).toThrow(/unknown key 'backnd'.*backend=/);
    expect(() => parseWebgpuEnv('featureLevel=full')).toThrow(/core or compatibility/);
  });

  it('tells software adapters from GPUs', () => {
    const report = (device: string, description: string, isFallbackAdapter = false) => ({
      vendor: '',
      architecture: '',
      device,
      description,
      isFallbackAdapter,
      featureLevel: 'core',
      attempt: '',
      setSurfaceless: false,
    });
    expect(isHardwareAdapter(report('llvmpipe-llvm-15-0-6-256-bits-', 'OpenGL version OpenGL ES 3.2 Mesa 22.3.6'))).toBe(false);
    expect(isHardwareAdapter(report('SwiftShader Device (Subzero)', 'Vulkan'))).toBe(false);
    expect(isHardwareAdapter(report('NVIDIA H100 80GB HBM3', 'NVIDIA: 550.54.15'))).toBe(true);
    expect(isHardwareAdapter(report('NVIDIA H100 80GB HBM3', '', true))).toBe(false);
    expect(isHardwareAdapter(report('', ''))).toBe(false);
  });
});
