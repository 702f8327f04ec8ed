/**
 * jit against eager, interleaved in one run (A B A B …: this machine's speed
 * drifts by 30% within minutes, so only side-by-side rounds compare), with
 * jax-js's jit on its wasm device beside tapegrad's (issue #22; bench/jaxjs.ts).
 * Each round runs, per row, tapegrad eager, tapegrad jit, then jax-js jit:
 *
 * 1. dispatch: a 5-op function sum(tanh(v·v + exp(v))) of a 16-element
 *    vector, and its valueAndGrad, eager against a jitted replay:
 *    microseconds per op. Beside it the overhead alone: a 5-op function of
 *    one element whose ops cost a few nanoseconds of arithmetic,
 *    sum(−(v·v + 3v)), so its µs/op is what dispatch and replay cost. jax-js jit's rows time `jit(f)` and
 *    `jit(valueAndGrad(f))` on the same 16 values, divided by the same op
 *    counts (5, and the ops of tapegrad's lowered valueAndGrad program).
 * 2. the headline MLP (3072→128→20 ReLU, batch 128, momentum, L2) through
 *    `fit`, jit: true against jit: false: seconds per batch, as an epoch of
 *    40,000 images. jax-js jit's row: the same network, loss and momentum
 *    update as one jitted step (forward, backward, update) on random float32
 *    batches of CIFAR's shape, seconds per step × 40,000 / 128 likewise.
 *    tapegrad's cpu backend runs 2 threads here; jax-js's wasm device runs on
 *    one in Node (no global Worker for its pool).
 * 3. an element-wise chain (5 ops over 256×4096 floats and a row, then a sum)
 *    on cpu (2 threads) and gpujs (where headless-gl runs: xvfb-run): eager's
 *    five passes against jit's one fused kernel, milliseconds per call. The
 *    headline row also runs jitted on one thread (jax-js's wasm runs on one).
 * 4. cnn-coarse's network through `fit` (SGD Nesterov, weight decay, dropout
 *    drawn from each step's key), jit: true against jit: false: seconds per
 *    batch and the peak live bytes of a fresh cpu backend for each (no jax-js row).
 *
 * Printed after the table: eager / jit, and jax-js jit / tapegrad jit, per round.
 *
 *   node --experimental-wasm-relaxed-simd --import tsx bench/jit.ts DATA_DIR [ROUNDS=3]
 */
import * as E from 'fp-ts/lib/Either.js';
import {
  add,
  createCpuBackend,
  createGpujsBackend,
  detectGpu,
  exp,
  jit,
  Key,
  mul,
  neg,
  relu,
  sum,
  tanh,
  valueAndGrad,
  withBackend,
  type Backend,
  type Tensor,
} from '../src/index.js';
import { cifarSet, readCifar100, type CifarSplit } from '../src/data/index.js';
import { fit, mlp, modelFromSpec, type FitOptions } from '../src/nn/index.js';
import { cnnSpec } from './cnn-step.js';
import { initJaxWasm, jaxDispatch, jaxMlpStep } from './jaxjs.js';

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Microseconds per op of `g` (ops primitive applications per call), over `n` calls after a warm-up. */
const perOp = (g: () => Tensor | { value: Tensor; grads: Tensor }, ops: number, n = 4000): number => {
  const run = () => {
    const r = g();
    if ('dispose' in r) r.dispose();
    else {
      r.value.dispose();
      r.grads.dispose();
    }
  };
  for (let i = 0; i < 200; i++) run();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) run();
  return ((performance.now() - t0) * 1000) / n / ops;
};

/**
 * Milliseconds per call of an element-wise chain over 256×4096 floats and a
 * row, summed to a number (reading it waits for the work on any backend):
 * eager runs 5 element-wise passes and buffers before the sum, jit one fused kernel.
 */
const chainRow = (be: Backend) =>
  withBackend(be, () => {
    const x = new Key(1).normal([256, 4096]),
      b = new Key(2).normal([4096]);
    const f = (a: Tensor, r: Tensor) => sum(mul(tanh(relu(add(mul(a, 0.5), r))), a));
    const jf = jit(f);
    const time = (g: () => Tensor, n: number) => {
      g().item();
      const t0 = performance.now();
      for (let i = 0; i < n; i++) {
        const y = g();
        y.item();
        y.dispose();
      }
      return (performance.now() - t0) / n;
    };
    const n = be.name === 'gpujs' ? 5 : 20;
    const r = { eager: time(() => f(x, b), n), jit: time(() => jf(x, b), n) };
    x.dispose();
    b.dispose();
    jf.clear();
    return r;
  });

const dispatch = (be: Backend) =>
  withBackend(be, () => {
    const x = new Key(0).normal([16]);
    const f = (v: Tensor) => sum(tanh(add(mul(v, v), exp(v)))); // 5 primitives
    const g = (v: Tensor) => valueAndGrad(f)(v);
    const jf = jit(f),
      jg = jit(g);
    const gOps = String(jg.lower(x))
      .split('\n')
      .filter((l) => l.includes(' = ')).length;
    const one = new Key(0).normal([1]);
    const cheap = (v: Tensor) => sum(neg(add(mul(v, v), mul(v, 3)))); // 5 primitives of one element
    const jc = jit(cheap);
    return {
      eager: perOp(() => f(x), 5),
      jit: perOp(() => jf(x), 5),
      cheapEager: perOp(() => cheap(one), 5),
      cheapJit: perOp(() => jc(one), 5),
      eagerGrad: perOp(() => g(x), gOps),
      jitGrad: perOp(() => jg(x), gOps),
      gOps,
      xs: Float32Array.from(x.toTypedArray()),
    };
  });

/** Seconds per batch of `fit` (one epoch over `rows`), timed from the end of the first batch; and the backend's peak live bytes. */
const fitTimer = (
  file: CifarSplit,
  model: ReturnType<typeof mlp> | ReturnType<typeof modelFromSpec>,
  rows: number,
  opts: Partial<FitOptions>,
  useJit: boolean,
  threads: 1 | 2 = 2,
) => {
  const be = createCpuBackend({ threads });
  try {
    const idx = Array.from({ length: rows }, (_, i) => i);
    const train = cifarSet(file, idx, 'coarse', 'per-image', undefined, { backend: be });
    const val = cifarSet(file, idx.slice(0, 128), 'coarse', 'per-image', undefined, { backend: be });
    const stamps: number[] = [];
    let path = '';
    const r = withBackend(be, () =>
      fit(
        model as ReturnType<typeof mlp>,
        model.layer.init(new Key(0)) as never,
        { train, val },
        {
          epochs: 1,
          batchSize: 128,
          shuffle: false,
          seed: 0,
          backend: be,
          jit: useJit,
          optimizer: { kind: 'momentum', lr: 0.001, momentum: 0.8 },
          ...opts,
          onEvent: (e) => {
            if (e.type === 'batch') stamps.push(performance.now());
            if (e.type === 'start' || e.type === 'stepPath') path = e.step.path;
          },
        },
      ),
    );
    if (E.isLeft(r)) throw r.left;
    const peak = be.memory().peakBytes;
    train.dispose();
    val.dispose();
    return { seconds: (stamps[stamps.length - 1]! - stamps[0]!) / 1000 / (stamps.length - 1), peak, path };
  } finally {
    be.dispose();
  }
};

const [dir, roundsArg = '3'] = process.argv.slice(2);
if (dir === undefined) throw new Error('usage: bench/jit.ts DATA_DIR [ROUNDS]');
const file = readCifar100(dir, 'train');
if (E.isLeft(file)) throw file.left;
const rounds = Number(roundsArg);
const headline = mlp([3072, 128, 20], { activation: 'relu', init: 'glorot-uniform' });
const coarse = cnnSpec('cnn-coarse');
const cnnOpts: Partial<FitOptions> = { optimizer: { kind: 'momentum', lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.0005 } };
const rows: Record<string, number[]> = {};
const note = (k: string, v: number) => {
  rows[k] = [...(rows[k] ?? []), v];
};
await initJaxWasm();
const cpu = createCpuBackend({ threads: 1 });
const cpu2 = createCpuBackend({ threads: 2 });
const gpu = detectGpu().context ? createGpujsBackend() : undefined;
if (gpu === undefined) console.error(`no gpujs rows: ${detectGpu().summary}`);
for (let r = 0; r < rounds; r++) {
  const d = dispatch(cpu);
  note('dispatch eager µs/op', d.eager);
  note('dispatch jit µs/op', d.jit);
  note('overhead (1 element) eager µs/op', d.cheapEager);
  note('overhead (1 element) jit µs/op', d.cheapJit);
  note(`valueAndGrad (${d.gOps} ops) eager µs/op`, d.eagerGrad);
  note(`valueAndGrad (${d.gOps} ops) jit µs/op`, d.jitGrad);
  const jd = jaxDispatch(d.xs, d.gOps);
  note('dispatch jax-js jit µs/op', jd.jit);
  note(`valueAndGrad (${d.gOps} ops) jax-js jit µs/op`, jd.jitGrad);
  for (const [name, be] of [
    ['cpu, 2 threads', cpu2],
    ['gpujs', gpu],
  ] as const) {
    if (be === undefined) continue;
    const c = chainRow(be);
    note(`chain (5 ops + sum) ms (${name}, eager)`, c.eager);
    note(`chain (5 ops + sum) ms (${name}, jit)`, c.jit);
  }
  for (const j of [false, true]) {
    const m = fitTimer(file.right, headline, 128 * 41, { l2: { lambda: 0.01, mode: 'loss', includeBias: false } }, j);
    note(`headline MLP epoch s (${m.path})`, (m.seconds * 40000) / 128);
  }
  const m1 = fitTimer(file.right, headline, 128 * 41, { l2: { lambda: 0.01, mode: 'loss', includeBias: false } }, true, 1);
  note('headline MLP epoch s (jit, 1 thread)', (m1.seconds * 40000) / 128);
  const jm = await jaxMlpStep({ lr: 0.001, momentum: 0.8, lambda: 0.01 });
  note('headline MLP epoch s (jax-js jit)', (jm.seconds * 40000) / 128);
  console.error(`jax-js MLP loss ${jm.lossFirst.toFixed(4)} → ${jm.lossLast.toFixed(4)}`);
  for (const j of [false, true]) {
    const m = fitTimer(file.right, modelFromSpec(coarse), 128 * 5, cnnOpts, j);
    note(`cnn-coarse step s (${m.path})`, m.seconds);
    note(`cnn-coarse peak MB (${m.path})`, m.peak / 2 ** 20);
  }
  console.error(`round ${r + 1}/${rounds} done`);
}
cpu.dispose();
cpu2.dispose();
gpu?.dispose();
const out = Object.entries(rows).map(([k, v]) => ({ row: k, median: Number(median(v).toPrecision(4)), rounds: v.map((x) => Number(x.toPrecision(4))) }));
console.table(out);
const ratio = (a: string, b: string) => {
  const ka = Object.keys(rows).find((k) => k.startsWith(a)),
    kb = Object.keys(rows).find((k) => k.startsWith(b));
  if (ka && kb) console.log(`${ka} / ${kb}: per round ${rows[ka]!.map((x, i) => (x / rows[kb]![i]!).toFixed(2)).join(', ')}`);
};
ratio('dispatch eager', 'dispatch jit');
ratio('overhead (1 element) eager', 'overhead (1 element) jit');
ratio('chain (5 ops + sum) ms (cpu, 2 threads, eager', 'chain (5 ops + sum) ms (cpu, 2 threads, jit');
ratio('chain (5 ops + sum) ms (gpujs, eager', 'chain (5 ops + sum) ms (gpujs, jit');
ratio(
  Object.keys(rows).find((k) => k.startsWith('valueAndGrad') && k.includes('eager')) ?? '',
  Object.keys(rows).find((k) => k.startsWith('valueAndGrad') && k.includes('jit')) ?? '',
);
ratio('headline MLP epoch s (eager', 'headline MLP epoch s (jit');
ratio('dispatch jax-js jit', 'dispatch jit');
ratio(
  Object.keys(rows).find((k) => k.startsWith('valueAndGrad') && k.includes('jax-js')) ?? '',
  Object.keys(rows).find((k) => k.startsWith('valueAndGrad') && k.endsWith(') jit µs/op')) ?? '',
);
ratio('headline MLP epoch s (jax-js jit', 'headline MLP epoch s (jit');
ratio('cnn-coarse step s (eager', 'cnn-coarse step s (jit');
ratio('cnn-coarse peak MB (eager', 'cnn-coarse peak MB (jit');
