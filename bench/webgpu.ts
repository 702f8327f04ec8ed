/**
 * The webgpu backend beside the cpu backend, in interleaved rounds (cpu, webgpu,
 * cpu, webgpu, … in one process: this machine's speed drifts within minutes, so
 * each ratio is taken within a round and the median over rounds is printed):
 *
 * - matmul 512² and 1024² (float32), timed over repetitions until the result is
 *   on the host (webgpu: `finish()` waits for the device);
 * - a training step of the headline MLP's shape (3072 → 512 → 100, relu, batch
 *   128, momentum) through `fit`, per step from its batch events (the loss read
 *   each step included, as in real training), the first steps left out
 *   (shader compilation).
 *
 * - with `--cnn N` and CIFAR100_DIR set: cnn-coarse.yaml's training step at batch 128
 *   on the real rows (bench/cnn-step.ts's timer), N batches after a warm-up one.
 *
 * Run: `node --import tsx bench/webgpu.ts [--rounds 3] [--reps 5] [--cnn 2]`. Options for
 * the adapter come from TAPEGRAD_WEBGPU (executor.ts). Without a GPU the adapter
 * is a software one (Mesa llvmpipe through Dawn's OpenGL ES): the numbers then
 * measure the CPU running shaders, not a GPU, and say nothing about hardware.
 */
import * as E from 'fp-ts/lib/Either.js';
import { createCpuBackend, createWebgpuBackend, fromArray, Key, matmul, tidy, type Backend, type Tensor } from '../src/core/index.js';
import { denseSet } from '../src/data/index.js';
import { fit, mlp } from '../src/nn/index.js';
import { readCifar100 } from '../src/data/index.js';
import { cnnStepTimer } from './cnn-step.js';

const flag = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i < 0 ? dflt : Number(process.argv[i + 1]) || dflt;
};
const rounds = flag('--rounds', 3);
const reps = flag('--reps', 5);
const cnnBatches = flag('--cnn', 0);
const cifarDir = process.env['CIFAR100_DIR'];
const cifar = cnnBatches > 0 && cifarDir !== undefined ? readCifar100(cifarDir, 'train') : undefined;
if (cnnBatches > 0 && (cifar === undefined || E.isLeft(cifar)))
  console.log('note: --cnn needs CIFAR100_DIR (the binary CIFAR-100 folder): the CNN row is left out');

const right = <A>(e: E.Either<Error, A>): A => {
  if (E.isLeft(e)) throw e.left;
  return e.right;
};
const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

const cpu = createCpuBackend();
const gpu = createWebgpuBackend();
console.log(`cpu:    ${cpu.description}`);
console.log(`webgpu: ${gpu.description}`);
if (!gpu.hardware) console.log('note: a software adapter: these webgpu numbers are the CPU running shaders; real-GPU numbers are unmeasured here.');

/** Seconds per n×n matmul on `be` (after one warm-up call that compiles). */
const timeMatmul = (be: Backend, n: number): number => {
  const data = new Key(n).normal([n, n], 'float32', 0, 1, 'reference').toTypedArray();
  const a = right(fromArray(data, [n, n], 'float32', be)),
    b = right(fromArray(data, [n, n], 'float32', be));
  const once = (): Tensor => matmul(a, b);
  tidy(() => once().toTypedArray());
  const t0 = performance.now();
  tidy(() => {
    let last: Tensor | undefined;
    for (let r = 0; r < reps; r++) last = once();
    // One read at the end waits for every product (webgpu queues them; the cpu backend has finished already).
    last!.toTypedArray();
  });
  const s = (performance.now() - t0) / 1000 / reps;
  a.dispose();
  b.dispose();
  return s;
};

/** Median seconds per training step of the MLP on `be` (steps after the first two). */
const timeMlpStep = (be: Backend): number => {
  const steps = 10,
    batch = 128;
  const key = new Key(7);
  const xs = key.normal([(steps + 1) * batch, 3072], 'float32', 0, 1, 'reference').toTypedArray() as Float32Array;
  const ys = Uint8Array.from({ length: (steps + 1) * batch }, (_, i) => (i * 31) % 100);
  const model = mlp([3072, 512, 100], { activation: 'relu', init: 'glorot-uniform' });
  const times: number[] = [];
  let t = performance.now();
  right(
    fit(
      model,
      model.layer.init(new Key(0)),
      {
        train: denseSet(xs.slice(0, steps * batch * 3072), ys.slice(0, steps * batch), 3072, 100, be),
        val: denseSet(xs.slice(steps * batch * 3072), ys.slice(steps * batch), 3072, 100, be),
      },
      {
        epochs: 1,
        batchSize: batch,
        shuffle: false,
        seed: 0,
        backend: be,
        optimizer: { kind: 'momentum', lr: 0.01, momentum: 0.9 },
        onEvent: (e) => {
          if (e.type === 'batch') {
            const now = performance.now();
            times.push((now - t) / 1000);
            t = now;
          }
        },
      },
    ),
  );
  return median(times.slice(2));
};

const rows: Record<string, { cpu: number[]; webgpu: number[] }> = {};
const record = (name: string, which: 'cpu' | 'webgpu', s: number) => {
  rows[name] ??= { cpu: [], webgpu: [] };
  rows[name][which].push(s);
};

for (let r = 1; r <= rounds; r++) {
  for (const n of [512, 1024]) {
    record(`matmul ${n}²`, 'cpu', timeMatmul(cpu, n));
    record(`matmul ${n}²`, 'webgpu', timeMatmul(gpu, n));
  }
  record('MLP step (3072-512-100, batch 128)', 'cpu', timeMlpStep(cpu));
  record('MLP step (3072-512-100, batch 128)', 'webgpu', timeMlpStep(gpu));
  if (cifar !== undefined && E.isRight(cifar)) {
    for (const [which, be] of [
      ['cpu', cpu],
      ['webgpu', gpu],
    ] as const) {
      const timer = cnnStepTimer(cifar.right, be, cnnBatches, 'cnn-coarse');
      record('cnn-coarse step (batch 128)', which, timer.secondsPerBatch());
      timer.dispose();
    }
  }
  console.log(`round ${r}/${rounds} done`);
}

console.log('\nmedian over rounds (ratio: webgpu time / cpu time, per round, then the median; > 1 means webgpu is slower)');
console.log(`${'what'.padEnd(38)} ${'cpu'.padStart(10)} ${'webgpu'.padStart(10)} ${'ratio'.padStart(8)}`);
for (const [name, { cpu: c, webgpu: g }] of Object.entries(rows)) {
  const ratios = c.map((x, i) => g[i]! / x);
  const gflops = name.startsWith('matmul') ? (n: number, s: number) => ` (${((2 * n ** 3) / s / 1e9).toFixed(1)} GFLOP/s)` : () => '';
  const n = Number(/(\d+)²/.exec(name)?.[1] ?? 0);
  console.log(
    `${name.padEnd(38)} ${`${(median(c) * 1000).toFixed(1)} ms`.padStart(10)} ${`${(median(g) * 1000).toFixed(1)} ms`.padStart(10)} ${median(ratios).toFixed(2).padStart(8)}×${gflops(n, median(g))}`,
  );
}
gpu.dispose();
cpu.dispose();
