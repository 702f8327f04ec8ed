/**
 * Times of the gpujs backend's kernels on the headline network's shapes:
 * the 128×3072 · 3072×128 product in its three training forms, and a chain of
 * ten element-wise kernels with no download in between. WebGL queues draws,
 * so every timing ends with a read of the last result (the read alone is
 * timed too). Medians of 5 after one warm-up call that compiles the kernels.
 *
 * Then the CNN's image kernels (examples/configs/cnn.yaml's two conv layers and
 * their pools, at batch 32) as shaders against the host round trip they
 * replaced (download the operands, run the host kernel, upload the result),
 * interleaved shader / round trip, medians of 5. Under Xvfb the renderer is
 * Mesa llvmpipe (software GL on the CPU), so these say nothing about a real GPU.
 *
 *   xvfb-run -a npx tsx bench/gpujs-kernels.ts
 */
import type { Operand } from '../src/core/backend.js';
import { createGpujsBackend, type GpuBuffer } from '../src/core/backends/gpujs.js';
import { hostKernels } from '../src/core/kernels.js';
import type { KernelPrimitive } from '../src/core/primitives.js';

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

for (const [shape, x] of [
  [[128, 128], D],
  [[3072, 128], W],
] as const) {
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
// --- image kernels: shader vs the host round trip -------------------------------
const host = hostKernels((dtype, n) => (dtype === 'float32' ? new Float32Array(n) : new Float64Array(n)));
type AnyKernel = (inputs: readonly Operand<unknown>[], params: unknown, out: { shape: readonly number[]; dtype: 'float32' }) => unknown;
/** What gpujs did before the shaders: operands down, host kernel, result up. */
const roundTrip = (prim: KernelPrimitive, inputs: readonly Operand<GpuBuffer>[], params: unknown, out: { shape: number[]; dtype: 'float32' }): GpuBuffer => {
  const onHost = inputs.map((x) => ({ ...x, buf: be.read(x.buf, 'float32', x.buf.n) }));
  return be.upload((host as unknown as Record<string, AnyKernel>)[prim]!(onHost, params, out) as Float32Array);
};
const interleaved = (label: string, prim: KernelPrimitive, inputs: readonly Operand<GpuBuffer>[], params: unknown, shape: number[]): void => {
  const out = f32(shape);
  const shader = () => (be.kernels as unknown as Record<string, (...a: unknown[]) => GpuBuffer>)[prim]!(inputs, params, out);
  const trip = () => roundTrip(prim, inputs, params, out);
  const ms: [number[], number[]] = [[], []];
  for (let r = 0; r < 6; r++) {
    [shader, trip].forEach((f, v) => {
      const t0 = performance.now();
      const result = f();
      be.read(result, 'float32', result.n);
      if (r > 0) ms[v]!.push(performance.now() - t0);
      be.free(result);
    });
  }
  const [a, b] = [median(ms[0]), median(ms[1])];
  console.log(`${label}: shader ${a.toFixed(1)} ms, host round trip ${b.toFixed(1)} ms, ratio ${(b / a).toFixed(2)} (medians of 5, interleaved)`);
};
const B = 32;
for (const [c, f, hw] of [
  [3, 16, 32],
  [16, 32, 16],
] as const) {
  const xs = [B, c, hw, hw],
    ws = [f, c, 3, 3],
    ys = [B, f, hw, hw],
    ps = [B, f, hw / 2, hw / 2];
  const x = op(be.upload(rand(B * c * hw * hw)), xs),
    w = op(be.upload(rand(f * c * 9)), ws);
  const ct = op(be.upload(rand(B * f * hw * hw)), ys),
    pct = op(be.upload(rand((B * f * hw * hw) / 4)), ps);
  const p = { stride: 1, padding: 1 },
    pool = { size: 2, stride: 2 };
  const name = `[${xs.join(', ')}] * [${ws.join(', ')}]`;
  interleaved(`conv2d           ${name}`, 'conv2d', [x, w], p, ys);
  interleaved(`conv2dGradInput  ${name}`, 'conv2dGradInput', [ct, w], { ...p, inputShape: xs }, xs);
  interleaved(`conv2dGradWeight ${name}`, 'conv2dGradWeight', [ct, x], { ...p, filterShape: ws }, ws);
  interleaved(`maxPool2d        [${ys.join(', ')}]`, 'maxPool2d', [ct], pool, ps);
  interleaved(`maxPool2dGrad    [${ys.join(', ')}]`, 'maxPool2dGrad', [pct, ct], pool, ys);
  for (const t of [x, w, ct, pct]) be.free(t.buf);
}

console.log('memory', be.memory());
be.dispose();
