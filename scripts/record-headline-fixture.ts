// Records the headline configuration's per-epoch history on a small CIFAR-100
// slice into test/fixtures/headline-history.json. Run once with the code *before*
// a change that must not move the paper preset's arithmetic; the test
// test/experiments/headline-history.test.ts then replays the same runs with the
// current code and demands equality to the bit (JSON keeps every float64 exactly).
//   CIFAR100_DIR=... TAPEGRAD_BLAS=none node --experimental-wasm-relaxed-simd --import tsx scripts/record-headline-fixture.ts <commit>
// (relaxed SIMD and the WebAssembly GEMM, as the test replays them: otherwise the kernels round differently)
import * as E from 'fp-ts/lib/Either.js';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { decodeConfig, setPath } from '../src/experiments/config.js';
import { runExperiment } from '../src/experiments/run.js';

/** The slices: the headline as configured (paper preset), and the same model under the defaults preset with loss-form L2. */
export const headlineVariants = (): { name: string; raw: unknown }[] => {
  const headline = parse(readFileSync('examples/configs/headline.yaml', 'utf8')) as Record<string, unknown>;
  const small = (c: unknown) => setPath(setPath(setPath(c, 'data.limitTrain', 1500), 'data.limitTest', 500), 'training.epochs', 3);
  const { paper: _p, ...base } = headline;
  return [
    { name: 'paper', raw: small({ ...base, backend: 'cpu' }) },
    { name: 'defaults-loss-l2', raw: small({ ...base, backend: 'cpu', preset: 'defaults', model: { hidden: [32], activation: 'tanh' } }) },
  ];
};

export const replay = async (raw: unknown, dataDir: string) => {
  const c = decodeConfig(raw);
  if (E.isLeft(c)) throw c.left;
  const r = await runExperiment(c.right, { outDir: mkdtempSync(join(tmpdir(), 'headline-')), plots: false, dataDir });
  if (E.isLeft(r)) throw r.left;
  return { history: r.right.history.map(({ seconds: _s, ...rest }) => rest), testLoss: r.right.testLoss, testAccuracy: r.right.testAccuracy };
};

if (process.argv[1]?.endsWith('record-headline-fixture.ts')) {
  const dir = process.env['CIFAR100_DIR'];
  if (dir === undefined) throw new Error('set CIFAR100_DIR');
  const out: Record<string, unknown> = {};
  for (const v of headlineVariants()) out[v.name] = await replay(v.raw, dir);
  writeFileSync('test/fixtures/headline-history.json', `${JSON.stringify({ recordedWith: process.argv[2] ?? 'unknown commit', runs: out }, null, 2)}\n`);
  console.log(JSON.stringify(out, null, 1));
}
