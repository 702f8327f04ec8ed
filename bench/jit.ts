/**
 * jit against eager, interleaved in one run (A B A B …: this machine's speed
 * drifts by 30% within minutes, so only side-by-side rounds compare):
 *
 * 1. dispatch: a 4-op function of 16-element tensors, and its valueAndGrad,
 *    eager against a jitted replay: microseconds per op.
 * 2. the headline MLP (3072→128→20 ReLU, batch 128, momentum, L2) through
 *    `fit`, jit: true against jit: false: seconds per batch, as an epoch of
 *    40,000 images.
 * 3. cnn-coarse's network through `fit` (SGD Nesterov, weight decay), with its
 *    dropout layer (fit then runs it eagerly: a random draw cannot enter a
 *    program yet) and without it (jitted): seconds per batch and the peak
 *    live bytes of a fresh cpu backend for each.
 *
 *   node --experimental-wasm-relaxed-simd --import tsx bench/jit.ts DATA_DIR [ROUNDS=3]
 */
import * as E from 'fp-ts/lib/Either.js';
import { add, createCpuBackend, exp, jit, Key, mul, sum, tanh, valueAndGrad, withBackend, type Backend, type Tensor } from '../src/index.js';
import { cifarSet, readCifar100, type CifarSplit } from '../src/data/index.js';
import { fit, mlp, modelFromSpec, type FitOptions, type SequentialSpec } from '../src/nn/index.js';
import { cnnSpec } from './cnn-step.js';

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Microseconds per op of `g` (ops primitive applications per call), over `n` calls after a warm-up. */
const perOp = (g: () => Tensor | { value: Tensor; grads: Tensor }, ops: number, n = 4000): number => {
  const run = () => {
    const r = g();
    if ('dispose' in r) r.dispose();
    else { r.value.dispose(); r.grads.dispose(); }
  };
  for (let i = 0; i < 200; i++) run();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) run();
  return ((performance.now() - t0) * 1000) / n / ops;
};

const dispatch = (be: Backend) => withBackend(be, () => {
  const x = new Key(0).normal([16]);
  const f = (v: Tensor) => sum(tanh(add(mul(v, v), exp(v)))); // 5 primitives
  const g = (v: Tensor) => valueAndGrad(f)(v);
  const jf = jit(f), jg = jit(g);
  const gOps = String(jg.lower(x)).split('\n').filter((l) => l.includes(' = ')).length;
  return { eager: perOp(() => f(x), 5), jit: perOp(() => jf(x), 5), eagerGrad: perOp(() => g(x), gOps), jitGrad: perOp(() => jg(x), gOps), gOps };
});

/** Seconds per batch of `fit` (one epoch over `rows`), timed from the end of the first batch; and the backend's peak live bytes. */
const fitTimer = (file: CifarSplit, model: ReturnType<typeof mlp> | ReturnType<typeof modelFromSpec>, rows: number, opts: Partial<FitOptions>, useJit: boolean) => {
  const be = createCpuBackend({ threads: 2 });
  try {
    const idx = Array.from({ length: rows }, (_, i) => i);
    const train = cifarSet(file, idx, 'coarse', 'per-image', undefined, { backend: be });
    const val = cifarSet(file, idx.slice(0, 128), 'coarse', 'per-image', undefined, { backend: be });
    const stamps: number[] = [];
    let path = '';
    const r = withBackend(be, () => fit(model as ReturnType<typeof mlp>, model.layer.init(new Key(0)) as never, { train, val }, {
      epochs: 1, batchSize: 128, shuffle: false, seed: 0, backend: be, jit: useJit,
      optimizer: { kind: 'momentum', lr: 0.001, momentum: 0.8 },
      ...opts,
      onEvent: (e) => {
        if (e.type === 'batch') stamps.push(performance.now());
        if (e.type === 'start' || e.type === 'stepPath') path = e.step.path;
      },
    }));
    if (E.isLeft(r)) throw r.left;
    const peak = be.memory().peakBytes;
    train.dispose(); val.dispose();
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
const noDropout: SequentialSpec = { ...coarse, layers: coarse.layers.filter((l) => l.type !== 'dropout') };
const cnnOpts: Partial<FitOptions> = { optimizer: { kind: 'momentum', lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.0005 } };
const rows: Record<string, number[]> = {};
const note = (k: string, v: number) => {
  rows[k] = [...(rows[k] ?? []), v];
};
const cpu = createCpuBackend({ threads: 1 });
for (let r = 0; r < rounds; r++) {
  const d = dispatch(cpu);
  note('dispatch eager µs/op', d.eager); note('dispatch jit µs/op', d.jit);
  note(`valueAndGrad (${d.gOps} ops) eager µs/op`, d.eagerGrad); note(`valueAndGrad (${d.gOps} ops) jit µs/op`, d.jitGrad);
  for (const j of [false, true]) {
    const m = fitTimer(file.right, headline, 128 * 41, { l2: { lambda: 0.01, mode: 'loss', includeBias: false } }, j);
    note(`headline MLP epoch s (${m.path})`, m.seconds * 40000 / 128);
  }
  for (const [name, spec] of [['cnn-coarse', coarse], ['cnn-coarse without dropout', noDropout]] as const) {
    for (const j of [false, true]) {
      const m = fitTimer(file.right, modelFromSpec(spec), 128 * 5, cnnOpts, j);
      note(`${name} step s (${j ? `jit: true → ${m.path}` : 'eager'})`, m.seconds);
      note(`${name} peak MB (${j ? `jit: true → ${m.path}` : 'eager'})`, m.peak / 2 ** 20);
    }
  }
  console.error(`round ${r + 1}/${rounds} done`);
}
cpu.dispose();
const out = Object.entries(rows).map(([k, v]) => ({ row: k, median: Number(median(v).toPrecision(4)), rounds: v.map((x) => Number(x.toPrecision(4))) }));
console.table(out);
const ratio = (a: string, b: string) => {
  const ka = Object.keys(rows).find((k) => k.startsWith(a)), kb = Object.keys(rows).find((k) => k.startsWith(b));
  if (ka && kb) console.log(`${ka} / ${kb}: per round ${rows[ka]!.map((x, i) => (x / rows[kb]![i]!).toFixed(2)).join(', ')}`);
};
ratio('dispatch eager', 'dispatch jit');
ratio(Object.keys(rows).find((k) => k.startsWith('valueAndGrad') && k.includes('eager')) ?? '', Object.keys(rows).find((k) => k.startsWith('valueAndGrad') && k.includes('jit')) ?? '');
ratio('headline MLP epoch s (eager', 'headline MLP epoch s (jit');
ratio('cnn-coarse without dropout step s (eager', 'cnn-coarse without dropout step s (jit');
