/**
 * Times of the gpujs backend's kernels on the headline network's shapes:
 * the 128×3072 · 3072×128 product in its three training forms, and a chain of
 * ten element-wise kernels with no download in between. WebGL queues draws,
 * so every timing ends with a read of the last result (the read alone is
 * timed too). Medians of 5 after one warm-up call that compiles the kernels.
 *
 *   xvfb-run -a npx tsx bench/gpujs-kernels.ts
 */
import type { Operand } from '../src/core/backend.js';
import { createGpujsBackend, type GpuBuffer } from '../src/core/backends/gpujs.js';

const be = createGpujsBackend();
console.log(be.description);

const rand = (n: number): Float32Array => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);
const op = (buf: GpuBuffer, shape: number[]): Operand<GpuBuffer> => ({ buf, shape, dtype: 'float32' });
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Median ms of `f` (which returns the buffer to read and the buffers to free). */
const time = (label: string, f: () => { result: GpuBuffer; temps: GpuBuffer[] }): void => {
  const ms: number[] = [];
  for (let r = 0; r < 6; r++) {
    const t0 = performance.now();
    const { result, temps } = f();
    be.read(result, 'float32', result.n);
    const t = performance.now() - t0;
    if (r > 0) ms.push(t);
    for (const b of [...temps, result]) be.free(b);
  }
  console.log(`${label}: ${median(ms).toFixed(1)} ms (median of 5; runs ${ms.map((x) => x.toFixed(0)).join(', ')})`);
};

const X = op(be.upload(rand(128 * 3072)), [128, 3072]);
const W = op(be.upload(rand(3072 * 128)), [3072, 128]);
const D = op(be.upload(rand(128 * 128)), [128, 128]);
const f32 = (shape: number[]) => ({ shape, dtype: 'float32' as const });

const batch = rand(128 * 3072);
time('upload of a 128×3072 batch', () => ({ result: be.upload(batch), temps: [] }));
time('read of 128×128', () => ({ result: be.kernels.neg([D], null, f32([128, 128])), temps: [] }));
time('matmul X·W      128×3072 · 3072×128', () => ({ result: be.kernels.matmul([X, W], { transA: false, transB: false }, f32([128, 128])), temps: [] }));
time('matmul Xᵀ·Δ     (128×3072)ᵀ · 128×128', () => ({ result: be.kernels.matmul([X, D], { transA: true, transB: false }, f32([3072, 128])), temps: [] }));
time('matmul Δ·Wᵀ     128×128 · (3072×128)ᵀ', () => ({ result: be.kernels.matmul([D, W], { transA: false, transB: true }, f32([128, 3072])), temps: [] }));

for (const [shape, x] of [[[128, 128], D], [[3072, 128], W]] as const) {
  time(`chain of 10 element-wise kernels on [${shape.join(', ')}]`, () => {
    const temps: GpuBuffer[] = [];
    const s = [...shape];
    let t = x;
    const next = (b: GpuBuffer) => {
      temps.push(b);
      t = op(b, s);
    };
    next(be.kernels.tanh([t], null, f32(s)));
    next(be.kernels.mul([t, x], null, f32(s)));
    next(be.kernels.add([t, x], null, f32(s)));
    next(be.kernels.exp([t], null, f32(s)));
    next(be.kernels.sigmoid([t], null, f32(s)));
    next(be.kernels.neg([t], null, f32(s)));
    next(be.kernels.relu([t], null, f32(s)));
    next(be.kernels.reluGrad([x, t], null, f32(s)));
    next(be.kernels.add([t, x], null, f32(s)));
    const result = be.kernels.mul([t, t], null, f32(s));
    return { result, temps };
  });
}
console.log('memory', be.memory());
be.dispose();
