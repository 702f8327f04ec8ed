/**
 * `npm run bench`: tapegrad's cpu backend beside numpy, JAX and PyTorch, in
 * interleaved rounds (A B C A B C …, one process each) because this machine's
 * speed drifts by 30% and more within minutes: a ratio is taken within each
 * round, then the median over rounds. Two parts, each able to run alone:
 *
 * - `mlp`: the headline network's training epoch on the real data, the identical
 *   algorithm on the identical split in numpy, JAX, PyTorch and tapegrad's cpu
 *   backend (native BLAS and WebAssembly; numpy and the native path each with the
 *   OPENBLAS variables unset for that command alone and as the environment sets
 *   them); then the slow backends (extrapolated from a few batches), a matmul
 *   micro-benchmark over the training step's shapes (bench/matmul.ts), and the
 *   data-loading time.
 * - `cnn`: a training step of examples/configs/cnn.yaml's CNN and of
 *   cnn-coarse.yaml's (the recipe) at batch 128 (tapegrad through `fit` on the
 *   cpu backend, native and WebAssembly, bench/cnn-step.ts; PyTorch, and JAX for
 *   cnn.yaml's, on CPU, bench/reference/cnn_*.py), timed over a few batches and
 *   extrapolated to an epoch of 40,000 images.
 *
 * Prints the parts' tables, then one table of every ratio, and writes
 * bench/results/latest.json (with --docs, also docs/bench/bench.txt and .json).
 * JAX and PyTorch join the rounds when `npm run bench:setup` has installed them in
 * bench/.venv; the bench says when they are absent and still runs.
 *
 * Options: --only mlp|cnn (default both), --rounds R (default 3), --epochs N per
 * MLP run (default 3), --cnn-batches N timed per CNN run (default 12), --docs.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { detectGpu, Key } from '../src/core/index.js';
import { cifarSet, locateDataDir, readCifar100, trainValSplit } from '../src/data/index.js';
import { writeFileAtomic } from '../src/nn/index.js';
import { BATCHES_PER_EPOCH, CNN_BATCH, EPOCH_IMAGES } from './cnn-step.js';

const flag = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i < 0 ? dflt : Number(process.argv[i + 1]) || dflt;
};
const epochs = flag('--epochs', 3);
const rounds = flag('--rounds', 3);
const cnnBatches = flag('--cnn-batches', 12);
const onlyAt = process.argv.indexOf('--only');
const only = onlyAt < 0 ? undefined : process.argv[onlyAt + 1];
if (only !== undefined && only !== 'mlp' && only !== 'cnn') {
  console.error(`bench: --only ${only ?? ''}: choose mlp or cnn (or leave it out for both)`);
  process.exit(2);
}
const toDocs = process.argv.includes('--docs');
const dir = locateDataDir(process.env['CIFAR100_DIR'] ? undefined : '../shared/data/cifar-100-binary').dir;
const GFLOP_PER_EPOCH = (2 * 40000 * (3072 * 128 * 2 + 128 * 20 * 3) + 2 * 10000 * (3072 * 128 + 128 * 20)) / 1e9;

/** Everything printed, for docs/bench/bench.txt. */
const printed: string[] = [];
/** A result line (stdout). */
const say = (line: string): void => {
  console.log(line);
  printed.push(line);
};
/** A progress or notice line (stderr). */
const log = (line: string): void => {
  console.error(line);
  printed.push(line);
};

interface Run {
  backend: string;
  description: string;
  epochs: { seconds: number; trainLoss: number; valLoss: number; valAccuracy: number }[];
  peakRssMiB: number;
  extrapolatedFrom?: string | null;
  loadSeconds?: number;
  memory?: { dataMiB: number; maxLiveDuringTrainingMiB: number; peakMiB: number };
}
/** One line of the table of every ratio. */
interface RatioRow {
  workload: string;
  system: string;
  description: string;
  medianSeconds: number;
  cpuOverPerRound: number[];
  cpuOver: number | null;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)]!;
};

/**
 * The environment a run gets: 'unset' drops OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for
 * that command alone (this machine sets them for old OpenBLAS builds; a current one then
 * runs its Haswell kernels instead of its AVX-512 ones), 'as set' keeps them.
 */
type BlasEnv = 'unset' | 'as set';
const OPENBLAS_VARS = ['OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE'] as const;
const envFor = (blasEnv: BlasEnv, extra: Record<string, string> = {}): NodeJS.ProcessEnv => {
  const env = { ...process.env, ...extra };
  if (blasEnv === 'unset') for (const v of OPENBLAS_VARS) delete env[v];
  return env;
};
const asSet = OPENBLAS_VARS.map((v) => `${v}=${process.env[v] ?? 'unset'}`).join(', ');

/** A child process's last stdout line as JSON, or undefined (said) when it failed. */
const child = <T>(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): T | undefined => {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 24, env });
  if (r.status !== 0) {
    log(`${cmd} ${args.join(' ')} failed:\n${r.stderr}`);
    return undefined;
  }
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as T;
};
const tsx = ['--experimental-wasm-relaxed-simd', '--import', 'tsx'];

// JAX and PyTorch from the virtual environment `npm run bench:setup` makes, when it has them.
const venv = join('bench', '.venv', 'bin', 'python');
const hasModule = (mod: string): boolean => existsSync(venv) && spawnSync(venv, ['-c', `import ${mod}`], { stdio: 'ignore' }).status === 0;
const pythonSystems = (['jax', 'torch'] as const).filter((m) => {
  if (hasModule(m)) return true;
  log(`${m === 'torch' ? 'PyTorch' : 'JAX'} is not installed in bench/.venv: the bench runs without it (\`npm run bench:setup\` installs it)`);
  return false;
});
const pythonName = (m: 'jax' | 'torch') => (m === 'torch' ? 'pytorch' : 'jax');
const machine = `${cpus().length} cores, load average ${loadavg()
  .map((x) => x.toFixed(2))
  .join(' ')} at the start`;
log(`machine: ${machine}`);

/** The headline MLP's epoch (part `mlp`): its tables, its JSON, its ratios. */
const mlpBench = (): { json: Record<string, unknown>; ratios: RatioRow[] } => {
  // 1. The split both sides train on.
  const split = trainValSplit(50000, new Key(0).fold('split'));
  const splitFile = join(mkdtempSync(join(tmpdir(), 'tapegrad-bench-')), 'split.i32');
  writeFileSync(splitFile, Buffer.from(Int32Array.from([split.train.length, ...split.train, ...split.val]).buffer));

  const ours = (backend: string, n: number, maxBatches?: number, wrap = false, env: NodeJS.ProcessEnv = process.env): Run | undefined => {
    const args = [...tsx, 'bench/epoch.ts', backend, String(n), splitFile, ...(maxBatches ? [String(maxBatches)] : [])];
    return wrap ? child<Run>('xvfb-run', ['-a', 'node', ...args], env) : child<Run>('node', args, env);
  };

  // numpy and tapegrad's native path each run twice: with the OPENBLAS variables unset for
  // that command alone (the fair row, each picking its own kernel) and as the environment
  // sets them (labelled). 'cpu' is tapegrad's default (auto: the native BLAS where one
  // loads); 'cpu-wasm' the WebAssembly GEMM (TAPEGRAD_BLAS=none), the fallback.
  const numpyRun = (blasEnv: BlasEnv) => child<Run>('python3', ['bench/reference/mlp_numpy.py', dir, splitFile, String(epochs)], envFor(blasEnv));
  const systems: Array<{ name: string; run: () => Run | undefined }> = [
    { name: 'numpy', run: () => numpyRun('unset') },
    { name: 'numpy-env', run: () => numpyRun('as set') },
    ...pythonSystems.map((m) => ({ name: pythonName(m), run: () => child<Run>(venv, [`bench/reference/mlp_${m}.py`, dir, splitFile, String(epochs)]) })),
    { name: 'cpu', run: () => ours('cpu', epochs, undefined, false, envFor('unset')) },
    { name: 'cpu-env', run: () => ours('cpu', epochs, undefined, false, envFor('as set')) },
    { name: 'cpu-wasm', run: () => ours('cpu', epochs, undefined, false, envFor('unset', { TAPEGRAD_BLAS: 'none' })) },
    { name: 'cpu-whole', run: () => ours('cpu', epochs, undefined, false, envFor('unset', { BENCH_BLAS_BANDS: '0' })) },
  ];
  log(
    `rows: numpy and cpu with ${OPENBLAS_VARS.join(' and ')} unset for that command alone; numpy-env and cpu-env as the environment sets them (${asSet}); cpu-wasm: TAPEGRAD_BLAS=none; cpu-whole: the native products without the worker's band (blasBands: false)`,
  );
  log(`MLP: ${rounds} rounds of ${systems.map((x) => x.name).join(', ')} in turn, ${epochs} epochs each, 3072→128→20 ReLU (paper preset) on ${dir}`);
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
    log(`round ${r + 1}: ${[...medians].map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')} s/epoch`);
  }
  /** All epochs of a system's runs, as one run (medians then span every round). */
  const pooled = (rs: Run[]): Run | undefined =>
    rs.length === 0
      ? undefined
      : {
          ...rs[0]!,
          epochs: rs.flatMap((r) => r.epochs),
          peakRssMiB: Math.max(...rs.map((r) => r.peakRssMiB)),
        };
  /** cpu's time over `other`'s, per round where both ran. */
  const ratiosTo = (other: string): number[] => roundMedians.flatMap((m) => (m.has('cpu') && m.has(other) ? [m.get('cpu')! / m.get(other)!] : []));
  const numpyRuns = perSystem.get('numpy')!,
    cpuRuns = perSystem.get('cpu')!;
  const numpy = pooled(numpyRuns),
    cpu = pooled(cpuRuns);
  const pairRatios = ratiosTo('numpy');
  // Rows named by system (numpy and numpy-env, cpu, cpu-env and cpu-wasm are each one backend run two or three ways).
  const runs: Run[] = systems
    .map((x) => {
      const p = pooled(perSystem.get(x.name)!);
      return p && { ...p, backend: x.name };
    })
    .filter((r): r is Run => r !== undefined);
  const ref = ours('reference', 1, 4);
  if (ref) runs.push(ref);
  const gpu = detectGpu();
  const haveXvfb = spawnSync('sh', ['-c', 'command -v xvfb-run'], { stdio: 'ignore' }).status === 0;
  if (gpu.context || haveXvfb) {
    const g = ours('gpujs', 1, 2, !gpu.context);
    if (g) runs.push(g);
  } else {
    log(`gpujs skipped: ${gpu.summary}`);
  }

  // 2. Table of epochs.
  const base = numpy ? median(numpy.epochs.map((e) => e.seconds)) : undefined;
  const rows = runs.map((r) => {
    const s = r.epochs.map((e) => e.seconds);
    const med = median(s);
    return {
      backend: r.backend,
      description: r.description,
      medianSeconds: med,
      minSeconds: Math.min(...s),
      maxSeconds: Math.max(...s),
      gflops: GFLOP_PER_EPOCH / med,
      ratioToNumpy: base === undefined ? null : med / base,
      peakRssMiB: r.peakRssMiB,
      extrapolatedFrom: r.extrapolatedFrom ?? null,
      memory: r.memory ?? null,
      valLossPerEpoch: r.extrapolatedFrom ? null : r.epochs.map((e) => e.valLoss),
    };
  });
  const pairRatio = pairRatios.length > 0 ? median(pairRatios) : undefined;
  say(
    `\nOne epoch of the headline network (${GFLOP_PER_EPOCH.toFixed(1)} GFLOP: 40,000 training images + 10,000 validation); ${systems.map((x) => x.name).join(', ')}: ${rounds} interleaved rounds of ${epochs} epochs`,
  );
  say('| backend | s/epoch median | min | max | GFLOP/s | × numpy | peak RSS MiB | tensor memory MiB: data / live while training / peak | note |');
  say('|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const ratio = r.backend === 'cpu' && pairRatio !== undefined ? pairRatio : r.ratioToNumpy;
    const m = r.memory === null ? '—' : `${r.memory.dataMiB.toFixed(0)} / ${r.memory.maxLiveDuringTrainingMiB.toFixed(0)} / ${r.memory.peakMiB.toFixed(0)}`;
    say(
      `| ${r.backend} | ${r.medianSeconds.toFixed(2)} | ${r.minSeconds.toFixed(2)} | ${r.maxSeconds.toFixed(2)} | ${r.gflops.toFixed(1)} | ${ratio?.toFixed(2) ?? '—'} | ${r.peakRssMiB.toFixed(0)} | ${m} | ${r.extrapolatedFrom ? `extrapolated from ${r.extrapolatedFrom}; ` : ''}${r.description} |`,
    );
  }
  const versus = Object.fromEntries(systems.filter((x) => x.name !== 'cpu').map((x) => [x.name, ratiosTo(x.name)]));
  say('\ntapegrad cpu over each system, per round (interleaved), and the median:');
  for (const [name, rs] of Object.entries(versus)) {
    if (rs.length > 0) say(`- cpu × ${name}: ${rs.map((x) => x.toFixed(2)).join(', ')} → median ${median(rs).toFixed(2)}`);
  }
  const cpuRow = rows.find((r) => r.backend === 'cpu'),
    refRow = rows.find((r) => r.backend === 'reference');
  if (cpuRow && refRow) say(`\ncpu vs plain TypeScript (reference): ${(refRow.medianSeconds / cpuRow.medianSeconds).toFixed(1)}× faster`);
  if (numpy && cpu) {
    say('\nSame split, same init, same order: validation loss per epoch (a correctness cross-check)');
    say('| epoch | numpy | tapegrad cpu | relative difference |');
    say('|---|---|---|---|');
    numpyRuns[0]!.epochs.forEach((e, i) => {
      const o = cpuRuns[0]!.epochs[i]!.valLoss;
      say(`| ${i + 1} | ${e.valLoss.toFixed(6)} | ${o.toFixed(6)} | ${(Math.abs(o - e.valLoss) / e.valLoss).toExponential(2)} |`);
    });
  }

  // 3. Matmul micro-benchmark over the training step's shapes (bench/matmul.ts, its own
  // process, so that the OpenBLAS it loads sees the variables unset, as numpy's call does).
  interface Micro {
    native: string;
    wasm: string;
    rows: Array<{ name: string; m: number; k: number; n: number; numpyMs: number | null; native1Ms: number | null; native2Ms: number | null; wasmMs: number }>;
  }
  const microRun = child<Micro>('node', [...tsx, 'bench/matmul.ts'], envFor('unset'));
  const micro = microRun?.rows ?? [];
  say(
    `\nMatmul over the training step's shapes (ms, median of 7; ${OPENBLAS_VARS.join(' and ')} unset for numpy and tapegrad alike; native: ${microRun?.native ?? '—'})`,
  );
  say(
    '| product | m×k×n | numpy (2 threads) | cpu native, 1 BLAS thread (default) | × numpy | cpu native, 2 BLAS threads | × numpy | cpu WebAssembly (2 threads) | × numpy |',
  );
  say('|---|---|---|---|---|---|---|---|---|');
  const x = (c: number | null, np: number | null) => (c !== null && np !== null ? (c / np).toFixed(2) : '—');
  const ms = (c: number | null) => c?.toFixed(3) ?? '—';
  for (const r of micro) {
    say(
      `| ${r.name} | ${r.m}×${r.k}×${r.n} | ${ms(r.numpyMs)} | ${ms(r.native1Ms)} | ${x(r.native1Ms, r.numpyMs)} | ${ms(r.native2Ms)} | ${x(r.native2Ms, r.numpyMs)} | ${ms(r.wasmMs)} | ${x(r.wasmMs, r.numpyMs)} |`,
    );
  }

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
  const lazy = loadTimes(false),
    eager = loadTimes(true);
  say('\nLoading, splitting and normalizing the 50,000 training images (s, 3 runs)');
  say('| mode | median | min | max |');
  say('|---|---|---|---|');
  say(`| per-batch normalization (materialize: false) | ${lazy.median.toFixed(2)} | ${lazy.min.toFixed(2)} | ${lazy.max.toFixed(2)} |`);
  say(`| float32 matrices built up front (default) | ${eager.median.toFixed(2)} | ${eager.min.toFixed(2)} | ${eager.max.toFixed(2)} |`);
  if (numpy?.loadSeconds) say(`| numpy reference (train + val, float32) | ${numpy.loadSeconds.toFixed(2)} | | |`);

  const ratioRows: RatioRow[] = systems
    .map((x) => {
      const run = pooled(perSystem.get(x.name)!);
      const rs = x.name === 'cpu' ? [] : ratiosTo(x.name);
      return run === undefined
        ? undefined
        : {
            workload: 'MLP epoch',
            system: x.name,
            description: run.description,
            medianSeconds: median(run.epochs.map((e) => e.seconds)),
            cpuOverPerRound: rs,
            cpuOver: rs.length > 0 ? median(rs) : null,
          };
    })
    .filter((r): r is RatioRow => r !== undefined);
  return {
    json: {
      epochs,
      rounds,
      gflopPerEpoch: GFLOP_PER_EPOCH,
      runs: rows,
      cpuToNumpyPerRound: pairRatios,
      cpuToNumpy: pairRatio ?? null,
      cpuOverPerRound: versus,
      roundMedians: roundMedians.map((m) => Object.fromEntries(m)),
      matmul: micro,
      loading: { lazy, materialized: eager, numpySeconds: numpy?.loadSeconds ?? null },
    },
    ratios: ratioRows,
  };
};

/** One CNN step's result line (bench/cnn-step.ts, bench/reference/cnn_*.py). */
interface CnnStep {
  system: string;
  description: string;
  secondsPerBatch: number;
  secondsPerEpoch: number;
}

/** The CNN epoch (part `cnn`): tapegrad cpu, PyTorch and JAX in interleaved rounds. */
const cnnBench = (net: 'cnn' | 'cnn-coarse'): { json: Record<string, unknown>; ratios: RatioRow[] } => {
  const step = (extra: Record<string, string>) => () =>
    child<CnnStep>('node', [...tsx, 'bench/cnn-step.ts', dir, String(cnnBatches), net], envFor('unset', extra));
  // JAX's reference implements cnn.yaml's network only.
  const python = net === 'cnn' ? [...pythonSystems].reverse() : pythonSystems.filter((m) => m === 'torch');
  const systems: Array<{ name: string; run: () => CnnStep | undefined }> = [
    { name: 'cpu', run: step({}) },
    { name: 'cpu-wasm', run: step({ TAPEGRAD_BLAS: 'none' }) },
    ...python.map((m) => ({ name: pythonName(m), run: () => child<CnnStep>(venv, [`bench/reference/cnn_${m}.py`, dir, String(cnnBatches), net]) })),
  ];
  const what =
    net === 'cnn'
      ? "examples/configs/cnn.yaml's model, Adam"
      : "examples/configs/cnn-coarse.yaml's model (the recipe), SGD Nesterov + weight decay, no augmentation";
  log(
    `\n${net}: ${rounds} rounds of ${systems.map((x) => x.name).join(', ')} in turn, each timing ${cnnBatches} batches of ${CNN_BATCH} after one warm-up batch ` +
      `(${what}), extrapolated to ${BATCHES_PER_EPOCH} batches (${EPOCH_IMAGES.toLocaleString('en')} images); tapegrad with ${OPENBLAS_VARS.join(' and ')} unset`,
  );
  const steps = new Map<string, CnnStep[]>(systems.map((x) => [x.name, []]));
  const roundSeconds: Array<Record<string, number>> = [];
  for (let r = 0; r < rounds; r++) {
    const got: Record<string, number> = {};
    for (const sys of systems) {
      const s = sys.run();
      if (s === undefined) continue;
      steps.get(sys.name)!.push(s);
      got[sys.name] = s.secondsPerEpoch;
    }
    roundSeconds.push(got);
    log(
      `${net} round ${r + 1}: ${Object.entries(got)
        .map(([k, v]) => `${k} ${v.toFixed(1)}`)
        .join(', ')} s/epoch`,
    );
  }
  const ratiosTo = (other: string): number[] => roundSeconds.flatMap((m) => (m['cpu'] !== undefined && m[other] !== undefined ? [m['cpu'] / m[other]] : []));
  const ratioRows: RatioRow[] = systems.flatMap((x) => {
    const got = steps.get(x.name)!;
    if (got.length === 0) return [];
    const rs = x.name === 'cpu' ? [] : ratiosTo(x.name);
    return [
      {
        workload: `${net} epoch`,
        system: x.name,
        description: got[0]!.description,
        medianSeconds: median(got.map((s) => s.secondsPerEpoch)),
        cpuOverPerRound: rs,
        cpuOver: rs.length > 0 ? median(rs) : null,
      },
    ];
  });
  say(
    `\nOne ${net} training epoch (examples/configs/${net}.yaml, batch ${CNN_BATCH}, ${EPOCH_IMAGES.toLocaleString('en')} images; extrapolated from ${cnnBatches} timed batches per run); ${rounds} interleaved rounds`,
  );
  say('| system | s/batch median | s/epoch median | min | max | tapegrad cpu × it, per round → median | description |');
  say('|---|---|---|---|---|---|---|');
  for (const r of ratioRows) {
    const e = steps.get(r.system)!.map((s) => s.secondsPerEpoch);
    say(
      `| ${r.system} | ${(r.medianSeconds / BATCHES_PER_EPOCH).toFixed(3)} | ${r.medianSeconds.toFixed(1)} | ${Math.min(...e).toFixed(1)} | ${Math.max(...e).toFixed(1)} | ` +
        `${r.cpuOver === null ? '—' : `${r.cpuOverPerRound.map((x) => x.toFixed(2)).join(', ')} → **${r.cpuOver.toFixed(2)}**`} | ${r.description} |`,
    );
  }
  return {
    json: {
      batch: CNN_BATCH,
      epochImages: EPOCH_IMAGES,
      timedBatches: cnnBatches,
      rounds,
      roundSecondsPerEpoch: roundSeconds,
      runs: Object.fromEntries(steps),
      rows: ratioRows,
    },
    ratios: ratioRows,
  };
};

const mlp = only === undefined || only === 'mlp' ? mlpBench() : undefined;
const cnn = only === undefined || only === 'cnn' ? cnnBench('cnn') : undefined;
const coarse = only === undefined || only === 'cnn' ? cnnBench('cnn-coarse') : undefined;
const all = [...(mlp?.ratios ?? []), ...(cnn?.ratios ?? []), ...(coarse?.ratios ?? [])];
say(`\nEvery ratio: tapegrad cpu's time over each system's, per interleaved round, and the median (${machine})`);
say('| workload | system | s/epoch median | tapegrad cpu × it, per round → median |');
say('|---|---|---|---|');
for (const r of all) {
  say(
    `| ${r.workload} | ${r.system} | ${r.medianSeconds.toFixed(r.medianSeconds < 10 ? 2 : 1)} | ${r.cpuOver === null ? '—' : `${r.cpuOverPerRound.map((x) => x.toFixed(2)).join(', ')} → **${r.cpuOver.toFixed(2)}**`} |`,
  );
}
const json = JSON.stringify(
  {
    date: new Date().toISOString(),
    machine,
    parts: only ?? 'mlp,cnn',
    mlp: mlp?.json ?? null,
    cnn: cnn?.json ?? null,
    cnnCoarse: coarse?.json ?? null,
    ratios: all,
  },
  null,
  2,
);
writeFileAtomic(join('bench', 'results', 'latest.json'), json);
say('\nwritten: bench/results/latest.json');
if (toDocs) {
  writeFileAtomic(join('docs', 'bench', 'bench.json'), json);
  writeFileAtomic(join('docs', 'bench', 'bench.txt'), `npm run bench -- ${process.argv.slice(2).join(' ')}\n\n${printed.join('\n')}\n`);
  say('written: docs/bench/bench.txt, docs/bench/bench.json');
}
