/**
 * `npm run bench`: the headline network's training epoch on the real data,
 * tapegrad's cpu backend beside numpy, JAX and PyTorch runs of the identical
 * algorithm on the identical split, interleaved (numpy, jax, pytorch, cpu,
 * numpy, … one process each, in rounds) because this machine's speed drifts by 30% and more within minutes:
 * a ratio is taken within each round, then the median over rounds. Then the
 * slow backends (extrapolated from a few batches), a matmul micro-benchmark
 * over the training step's shapes, and the data-loading time. Prints tables and
 * writes bench/results/latest.json.
 *
 * JAX and PyTorch (CPU) join the rounds when `npm run bench:setup` has installed
 * them in bench/.venv; the bench says when they are absent and still runs.
 *
 * Options: --epochs N per run (default 3), --rounds R (default 3).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { createCpuBackend, createReferenceBackend, detectGpu, Key, matmul, toBackend, type Backend } from '../src/core/index.js';
import { cifarSet, locateDataDir, readCifar100, trainValSplit } from '../src/data/index.js';
import { writeFileAtomic } from '../src/nn/index.js';

const flag = (name: string, dflt: number) => { const i = process.argv.indexOf(name); return i < 0 ? dflt : Number(process.argv[i + 1]) || dflt; };
const epochs = flag('--epochs', 3);
const rounds = flag('--rounds', 3);
const dir = locateDataDir(process.env['CIFAR100_DIR'] ? undefined : '../shared/data/cifar-100-binary').dir;
const GFLOP_PER_EPOCH = (2 * 40000 * (3072 * 128 * 2 + 128 * 20 * 3) + 2 * 10000 * (3072 * 128 + 128 * 20)) / 1e9;

interface Run {
  backend: string; description: string; epochs: { seconds: number; trainLoss: number; valLoss: number; valAccuracy: number }[];
  peakRssMiB: number; extrapolatedFrom?: string | null; loadSeconds?: number;
  memory?: { dataMiB: number; maxLiveDuringTrainingMiB: number; peakMiB: number };
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)]!; };

// 1. The split both sides train on.
const split = trainValSplit(50000, new Key(0).fold('split'));
const splitFile = join(mkdtempSync(join(tmpdir(), 'tapegrad-bench-')), 'split.i32');
writeFileSync(splitFile, Buffer.from(Int32Array.from([split.train.length, ...split.train, ...split.val]).buffer));

const child = (cmd: string, args: string[]): Run | undefined => {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 24, env: process.env });
  if (r.status !== 0) { console.error(`${cmd} ${args.join(' ')} failed:\n${r.stderr}`); return undefined; }
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Run;
};
const ours = (backend: string, n: number, maxBatches?: number, wrap = false): Run | undefined => {
  const args = ['--experimental-wasm-relaxed-simd', '--import', 'tsx', 'bench/epoch.ts', backend, String(n), splitFile, ...(maxBatches ? [String(maxBatches)] : [])];
  return wrap ? child('xvfb-run', ['-a', 'node', ...args]) : child('node', args);
};

// JAX and PyTorch from the virtual environment `npm run bench:setup` makes, when it has them.
const venv = join('bench', '.venv', 'bin', 'python');
const hasModule = (mod: string): boolean => existsSync(venv) && spawnSync(venv, ['-c', `import ${mod}`], { stdio: 'ignore' }).status === 0;
const systems: Array<{ name: string; run: () => Run | undefined }> = [
  { name: 'numpy', run: () => child('python3', ['bench/reference/mlp_numpy.py', dir, splitFile, String(epochs)]) },
  ...(['jax', 'torch'] as const).filter((m) => {
    if (hasModule(m)) return true;
    console.error(`${m === 'torch' ? 'PyTorch' : 'JAX'} is not installed in bench/.venv: run \`npm run bench:setup\` to compare with it`);
    return false;
  }).map((m) => ({ name: m === 'torch' ? 'pytorch' : 'jax', run: () => child(venv, [`bench/reference/mlp_${m}.py`, dir, splitFile, String(epochs)]) })),
  { name: 'cpu', run: () => ours('cpu', epochs) },
];
console.error(`benchmark: ${rounds} rounds of ${systems.map((x) => x.name).join(', ')} in turn, ${epochs} epochs each, 3072→128→20 ReLU (paper preset) on ${dir}`);
const perSystem = new Map<string, Run[]>(systems.map((x) => [x.name, []]));
/** Per round, each system's median seconds per epoch (undefined where a run failed). */
const roundMedians: Array<Map<string, number>> = [];
for (let r = 0; r < rounds; r++) {
  const medians = new Map<string, number>();
  for (const sys of systems) {
    const run = sys.run();
    if (run === undefined) continue;
    perSystem.get(sys.name)!.push(run);
    medians.set(sys.name, median(run.epochs.map((e) => e.seconds)));
  }
  roundMedians.push(medians);
  console.error(`round ${r + 1}: ${[...medians].map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')} s/epoch`);
}
/** All epochs of a system's runs, as one run (medians then span every round). */
const pooled = (rs: Run[]): Run | undefined => (rs.length === 0 ? undefined : {
  ...rs[0]!, epochs: rs.flatMap((r) => r.epochs), peakRssMiB: Math.max(...rs.map((r) => r.peakRssMiB)),
});
/** cpu's time over `other`'s, per round where both ran. */
const ratiosTo = (other: string): number[] =>
  roundMedians.flatMap((m) => (m.has('cpu') && m.has(other) ? [m.get('cpu')! / m.get(other)!] : []));
const numpyRuns = perSystem.get('numpy')!, cpuRuns = perSystem.get('cpu')!;
const numpy = pooled(numpyRuns), cpu = pooled(cpuRuns);
const pairRatios = ratiosTo('numpy');
const runs: Run[] = systems.map((x) => pooled(perSystem.get(x.name)!)).filter((r): r is Run => r !== undefined);
const ref = ours('reference', 1, 4);
if (ref) runs.push(ref);
const gpu = detectGpu();
const haveXvfb = spawnSync('sh', ['-c', 'command -v xvfb-run'], { stdio: 'ignore' }).status === 0;
if (gpu.context || haveXvfb) {
  const g = ours('gpujs', 1, 2, !gpu.context);
  if (g) runs.push(g);
} else {
  console.error(`gpujs skipped: ${gpu.summary}`);
}

// 2. Table of epochs.
const base = numpy ? median(numpy.epochs.map((e) => e.seconds)) : undefined;
const rows = runs.map((r) => {
  const s = r.epochs.map((e) => e.seconds);
  const med = median(s);
  return {
    backend: r.backend, description: r.description,
    medianSeconds: med, minSeconds: Math.min(...s), maxSeconds: Math.max(...s),
    gflops: GFLOP_PER_EPOCH / med, ratioToNumpy: base === undefined ? null : med / base,
    peakRssMiB: r.peakRssMiB, extrapolatedFrom: r.extrapolatedFrom ?? null, memory: r.memory ?? null,
    valLossPerEpoch: r.extrapolatedFrom ? null : r.epochs.map((e) => e.valLoss),
  };
});
const pairRatio = pairRatios.length > 0 ? median(pairRatios) : undefined;
console.log(`\nOne epoch of the headline network (${GFLOP_PER_EPOCH.toFixed(1)} GFLOP: 40,000 training images + 10,000 validation); ${systems.map((x) => x.name).join(", ")}: ${rounds} interleaved rounds of ${epochs} epochs`);
console.log('| backend | s/epoch median | min | max | GFLOP/s | × numpy | peak RSS MiB | tensor memory MiB: data / live while training / peak | note |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  const ratio = r.backend === 'cpu' && pairRatio !== undefined ? pairRatio : r.ratioToNumpy;
  const m = r.memory === null ? '—' : `${r.memory.dataMiB.toFixed(0)} / ${r.memory.maxLiveDuringTrainingMiB.toFixed(0)} / ${r.memory.peakMiB.toFixed(0)}`;
  console.log(`| ${r.backend} | ${r.medianSeconds.toFixed(2)} | ${r.minSeconds.toFixed(2)} | ${r.maxSeconds.toFixed(2)} | ${r.gflops.toFixed(1)} | ${ratio?.toFixed(2) ?? '—'} | ${r.peakRssMiB.toFixed(0)} | ${m} | ${r.extrapolatedFrom ? `extrapolated from ${r.extrapolatedFrom}; ` : ''}${r.description} |`);
}
const versus = Object.fromEntries(systems.filter((x) => x.name !== 'cpu').map((x) => [x.name, ratiosTo(x.name)]));
console.log('\ntapegrad cpu over each system, per round (interleaved), and the median:');
for (const [name, rs] of Object.entries(versus)) {
  if (rs.length > 0) console.log(`- cpu × ${name}: ${rs.map((x) => x.toFixed(2)).join(', ')} → median ${median(rs).toFixed(2)}`);
}
const cpuRow = rows.find((r) => r.backend === 'cpu'), refRow = rows.find((r) => r.backend === 'reference');
if (cpuRow && refRow) console.log(`\ncpu vs plain TypeScript (reference): ${(refRow.medianSeconds / cpuRow.medianSeconds).toFixed(1)}× faster`);
if (numpy && cpu) {
  console.log('\nSame split, same init, same order: validation loss per epoch (a correctness cross-check)');
  console.log('| epoch | numpy | tapegrad cpu | relative difference |');
  console.log('|---|---|---|---|');
  numpyRuns[0]!.epochs.forEach((e, i) => {
    const o = cpuRuns[0]!.epochs[i]!.valLoss;
    console.log(`| ${i + 1} | ${e.valLoss.toFixed(6)} | ${o.toFixed(6)} | ${(Math.abs(o - e.valLoss) / e.valLoss).toExponential(2)} |`);
  });
}

// 3. Matmul micro-benchmark over the training step's shapes.
const shapes: Array<[string, number, number, number, boolean, boolean]> = [
  ['X·W1 (forward)', 128, 3072, 128, false, false],
  ['Xᵀ·Δ1 (dW1)', 3072, 128, 128, true, false],
  ['H·W2 (forward)', 128, 128, 20, false, false],
  ['Hᵀ·Δ2 (dW2)', 128, 128, 20, true, false],
  ['Δ2·W2ᵀ (dH)', 128, 20, 128, false, true],
  ['Xval·W1 (validation)', 1000, 3072, 128, false, false],
];
const timeMatmul = (be: Backend, m: number, k: number, n: number, ta: boolean, tb: boolean): number => {
  const key = new Key(1);
  // Operands on the backend, where a training run keeps them (the cpu backend's
  // kernel memory), so the products run as they do in training; each result is freed.
  const a = toBackend(key.uniform(ta ? [k, m] : [m, k], -1, 1), be);
  const b = toBackend(key.fold('b').uniform(tb ? [n, k] : [k, n], -1, 1), be);
  const once = () => matmul(a, b, { transA: ta, transB: tb }).dispose();
  for (let i = 0; i < 5; i++) once();
  const samples: number[] = [];
  for (let r = 0; r < 7; r++) {
    const reps = Math.max(1, Math.round(2e8 / (2 * m * n * k)));
    const t = performance.now();
    for (let i = 0; i < reps; i++) once();
    samples.push((performance.now() - t) / reps);
  }
  a.dispose();
  b.dispose();
  return median(samples);
};
const numpyMatmul = (m: number, k: number, n: number, ta: boolean, tb: boolean): number | undefined => {
  try {
    const code = `import numpy as np,time,statistics as st
a=np.random.rand(*(${ta ? `(${k},${m})` : `(${m},${k})`})).astype(np.float32); b=np.random.rand(*(${tb ? `(${n},${k})` : `(${k},${n})`})).astype(np.float32)
f=lambda: (a${ta ? '.T' : ''})@(b${tb ? '.T' : ''})
[f() for _ in range(5)]
reps=max(1,round(2e8/(2*${m}*${n}*${k}))); s=[]
for _ in range(7):
  t=time.perf_counter(); [f() for _ in range(reps)]; s.append((time.perf_counter()-t)/reps*1000)
print(st.median(s))`;
    return Number(execFileSync('python3', ['-c', code], { encoding: 'utf8' }).trim());
  } catch {
    return undefined;
  }
};
const cpuBe = createCpuBackend();
const referenceBe = createReferenceBackend();
console.log('\nMatmul over the training step\'s shapes (ms, median of 7; GFLOP/s)');
console.log('| product | m×k×n | numpy | cpu (2 threads) | cpu GFLOP/s | × numpy | reference (plain TS) |');
console.log('|---|---|---|---|---|---|---|');
const micro = shapes.map(([name, m, k, n, ta, tb]) => {
  const np = numpyMatmul(m, k, n, ta, tb);
  const c = timeMatmul(cpuBe, m, k, n, ta, tb);
  const r = m * k * n <= 128 * 3072 * 128 ? timeMatmul(referenceBe, m, k, n, ta, tb) : undefined;
  const gf = (2 * m * k * n) / (c * 1e6);
  console.log(`| ${name} | ${m}×${k}×${n} | ${np?.toFixed(3) ?? '—'} | ${c.toFixed(3)} | ${gf.toFixed(1)} | ${np ? (c / np).toFixed(2) : '—'} | ${r?.toFixed(2) ?? '—'} |`);
  return { name, m, k, n, transA: ta, transB: tb, numpyMs: np ?? null, cpuMs: c, referenceMs: r ?? null };
});
cpuBe.dispose();

// 4. Data loading: read + split + normalize the 50,000 training images.
const loadTimes = (materialize: boolean) => {
  const s: number[] = [];
  for (let r = 0; r < 3; r++) {
    const t = performance.now();
    const f = readCifar100(dir, 'train');
    if (E.isLeft(f)) throw f.left;
    const sp = trainValSplit(f.right.n, new Key(r).fold('split'));
    cifarSet(f.right, sp.train, 'coarse', 'per-image', undefined, { materialize }).dispose();
    cifarSet(f.right, sp.val, 'coarse', 'per-image', undefined, { materialize }).dispose();
    s.push((performance.now() - t) / 1000);
  }
  return { median: median(s), min: Math.min(...s), max: Math.max(...s) };
};
const lazy = loadTimes(false), eager = loadTimes(true);
console.log('\nLoading, splitting and normalizing the 50,000 training images (s, 3 runs)');
console.log('| mode | median | min | max |');
console.log('|---|---|---|---|');
console.log(`| per-batch normalization (materialize: false) | ${lazy.median.toFixed(2)} | ${lazy.min.toFixed(2)} | ${lazy.max.toFixed(2)} |`);
console.log(`| float32 matrices built up front (default) | ${eager.median.toFixed(2)} | ${eager.min.toFixed(2)} | ${eager.max.toFixed(2)} |`);
if (numpy?.loadSeconds) console.log(`| numpy reference (train + val, float32) | ${numpy.loadSeconds.toFixed(2)} | | |`);

writeFileAtomic(join('bench', 'results', 'latest.json'), JSON.stringify({
  date: new Date().toISOString(), epochs, rounds, gflopPerEpoch: GFLOP_PER_EPOCH, runs: rows, cpuToNumpyPerRound: pairRatios, cpuToNumpy: pairRatio ?? null, cpuOverPerRound: versus, roundMedians: roundMedians.map((m) => Object.fromEntries(m)), matmul: micro,
  loading: { lazy, materialized: eager, numpySeconds: numpy?.loadSeconds ?? null },
}, null, 2));
console.log('\nwritten: bench/results/latest.json');
