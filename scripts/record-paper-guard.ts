// Records the paper preset's guard runs into test/fixtures/paper-guard.json: the
// headline configuration and a two-layer tanh network on the fine labels, 3 epochs
// on a 3000-image slice with the cpu backend. Run it only for a change that must
// move these numbers (say which in the commit, old and new side by side); the test
// test/experiments/guard.test.ts then replays the same runs and demands equality to the bit.
//   CIFAR100_DIR=... node --experimental-wasm-relaxed-simd --import tsx scripts/record-paper-guard.ts <commit or why>
// (relaxed SIMD as the test processes and the tapegrad command run: without it the cpu kernels round differently)
import * as E from 'fp-ts/lib/Either.js';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeConfig, readRawConfig, setPath, type RawConfig } from '../src/experiments/config.js';
import { runExperiment } from '../src/experiments/run.js';

/** The guard runs: fixture name and config file. */
export const guardRuns = [
  ['headline', 'examples/configs/headline.yaml'],
  ['twoLayerTanhFine', 'test/fixtures/guard-two-layer-tanh-fine.yaml'],
] as const;

export interface Recorded {
  readonly history: readonly Record<string, number>[];
  readonly testAccuracy: number;
  readonly testLoss: number;
}

/** One guard run: the config with 3 epochs, 3000 training and 500 test images, on the cpu backend. */
export const rerun = async (file: string, dataDir: string): Promise<Recorded> => {
  const unwrap = <A>(x: E.Either<Error, A>): A => {
    if (E.isLeft(x)) throw x.left;
    return x.right;
  };
  let raw = unwrap(readRawConfig(file));
  for (const [k, v] of [
    ['training.epochs', 3],
    ['data.limitTrain', 3000],
    ['data.limitTest', 500],
    ['backend', 'cpu'],
  ] as const)
    raw = setPath(raw, k, v) as RawConfig;
  const r = unwrap(
    await runExperiment(unwrap(decodeConfig(raw, file)), { dataDir, outDir: join(mkdtempSync(join(tmpdir(), 'tapegrad-guard-')), 'run'), plots: false }),
  );
  return { history: r.history.map(({ seconds: _s, ...rest }) => rest), testAccuracy: r.testAccuracy, testLoss: r.testLoss };
};

if (process.argv[1]?.endsWith('record-paper-guard.ts')) {
  const dir = process.env['CIFAR100_DIR'];
  if (dir === undefined) throw new Error('set CIFAR100_DIR');
  const old = JSON.parse(readFileSync('test/fixtures/paper-guard.json', 'utf8')) as Record<string, unknown>;
  const out: Record<string, unknown> = {
    _comment:
      `Recorded by scripts/record-paper-guard.ts (${process.argv[2] ?? 'unknown commit'}) with the cpu backend, 3 epochs, 3000 training and 500 test images, ` +
      'on examples/configs/headline.yaml and test/fixtures/guard-two-layer-tanh-fine.yaml. The paper preset must reproduce these to the bit.',
  };
  for (const [name, file] of guardRuns) out[name] = await rerun(file, dir);
  writeFileSync('test/fixtures/paper-guard.json', `${JSON.stringify(out, null, 1)}\n`);
  console.log(JSON.stringify({ old, new: out }, null, 1));
}
