/**
 * A CNN training epoch on the cpu backend with convolutions on the GEMM
 * (im2col / col2im, the default) against the host kernels' direct loops, in one
 * process, interleaved (A B A B …: this machine's speed drifts by 30% within
 * minutes, so only alternating runs give a trustworthy ratio).
 *
 * The architecture is examples/configs/cnn.yaml's, at batch 128. Each round
 * trains BATCHES batches per variant with `fit` (the first batch, warm-up, is
 * not timed) and extrapolates to an epoch of 40,000 images (313 batches): the
 * loops take minutes per epoch.
 *
 * When `npm run bench:setup` has installed PyTorch in bench/.venv, each round
 * also runs bench/reference/cnn_torch.py (the same architecture, optimizer and
 * batch; a process of its own) and prints tapegrad's time over PyTorch's.
 *
 * Usage: node --experimental-wasm-relaxed-simd --import tsx bench/cnn-epoch.ts [ROUNDS=3] [BATCHES=12] [THREADS=2]
 */
import * as E from 'fp-ts/lib/Either.js';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createCpuBackend } from '../src/core/index.js';
import { locateDataDir, readCifar100 } from '../src/data/index.js';
import { BATCHES_PER_EPOCH, CNN_BATCH, cnnSpec, cnnStepTimer } from './cnn-step.js';

const [roundsArg = '3', batchesArg = '12', threadsArg = '2'] = process.argv.slice(2);
const rounds = Number(roundsArg),
  batches = Number(batchesArg),
  threads = Number(threadsArg) as 1 | 2;
const BATCH = CNN_BATCH,
  batchesPerEpoch = BATCHES_PER_EPOCH;
const spec = cnnSpec();

const dir = locateDataDir(process.env['CIFAR100_DIR'] ? undefined : '../shared/data/cifar-100-binary').dir;
const file = readCifar100(dir, 'train');
if (E.isLeft(file)) throw file.left;

const variants = {
  gemm: createCpuBackend({ threads, convolution: 'gemm' }),
  loops: createCpuBackend({ threads, convolution: 'loops' }),
} as const;
const timers = Object.fromEntries(Object.entries(variants).map(([name, be]) => [name, cnnStepTimer(file.right, be, batches)])) as Record<
  keyof typeof variants,
  ReturnType<typeof cnnStepTimer>
>;
/** Seconds per batch of one variant's run (bench/cnn-step.ts). */
const secondsPerBatch = (name: keyof typeof variants): number => timers[name].secondsPerBatch();

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const times: Record<keyof typeof variants, number[]> = { gemm: [], loops: [] };
const ratios: number[] = [];
const venv = 'bench/.venv/bin/python';
const torchAvailable = existsSync(venv) && spawnSync(venv, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
if (!torchAvailable) console.log('PyTorch is not installed in bench/.venv: run `npm run bench:setup` to compare with it');
/** PyTorch's seconds per batch for the same CNN step (its own process), or undefined. */
const torchSecondsPerBatch = (): number | undefined => {
  if (!torchAvailable) return undefined;
  const r = spawnSync(venv, ['bench/reference/cnn_torch.py', dir, String(batches)], { encoding: 'utf8' });
  if (r.status !== 0) {
    console.log(`cnn_torch.py failed: ${r.stderr}`);
    return undefined;
  }
  return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { secondsPerBatch: number }).secondsPerBatch;
};
const overTorch: number[] = [];
console.log(`CNN (${spec.layers.map((l) => l.type).join(' ')}), batch ${BATCH}, ${batches} timed batches per run, ${threads} thread(s), ${rounds} rounds`);
for (let round = 1; round <= rounds; round++) {
  for (const name of ['loops', 'gemm'] as const) times[name].push(secondsPerBatch(name));
  ratios.push(times.loops[round - 1]! / times.gemm[round - 1]!);
  const torch = torchSecondsPerBatch();
  if (torch !== undefined) overTorch.push(times.gemm[round - 1]! / torch);
  console.log(
    `round ${round}: loops ${times.loops[round - 1]!.toFixed(3)} s/batch, gemm ${times.gemm[round - 1]!.toFixed(3)} s/batch, ratio ${ratios[round - 1]!.toFixed(2)}` +
      (torch === undefined ? '' : `; PyTorch ${torch.toFixed(3)} s/batch, gemm × PyTorch ${(times.gemm[round - 1]! / torch).toFixed(2)}`),
  );
}
const epoch = (s: number) => (s * batchesPerEpoch).toFixed(1);
console.log(
  `median: loops ${median(times.loops).toFixed(3)} s/batch (${epoch(median(times.loops))} s per 40,000-image epoch), ` +
    `gemm ${median(times.gemm).toFixed(3)} s/batch (${epoch(median(times.gemm))} s per epoch), speed-up ${median(ratios).toFixed(2)}× (median of per-round ratios)`,
);
if (overTorch.length > 0)
  console.log(`tapegrad (gemm) × PyTorch, per round: ${overTorch.map((x) => x.toFixed(2)).join(', ')} → median ${median(overTorch).toFixed(2)}`);
for (const be of Object.values(variants)) be.dispose();
