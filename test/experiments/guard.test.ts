/**
 * The paper preset stays the same to the bit: the headline configuration, and a
 * two-layer tanh network on the fine labels, trained on a slice with the cpu
 * backend, give exactly the per-epoch history and test numbers that the code
 * before the backends redesign computed (test/fixtures/paper-guard.json, with
 * the commit that recorded them). A change in any kernel's arithmetic, the batch
 * order, the init or the early-stopping bookkeeping shows up here.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { decodeConfig, readRawConfig, setPath, type RawConfig } from '../../src/experiments/config.js';
import { runExperiment } from '../../src/experiments/run.js';
import { CIFAR_DIR } from '../data/location.js';
import { right } from '../helpers.js';

// Recorded on the WebAssembly GEMM (a native BLAS sums in another order): these runs use the
// paper preset, which runs there unless TAPEGRAD_BLAS chooses otherwise (run.ts, backendFor),
// so no pin here: the guard holds for `npm start` as a user runs it, native BLAS installed or not.
vi.stubEnv('TAPEGRAD_BLAS', undefined);

interface Recorded {
  readonly history: readonly Record<string, number>[];
  readonly testAccuracy: number;
  readonly testLoss: number;
}
const fixture = JSON.parse(readFileSync('test/fixtures/paper-guard.json', 'utf8')) as Record<'headline' | 'twoLayerTanhFine', Recorded>;

const rerun = async (file: string): Promise<Recorded> => {
  let raw = right(readRawConfig(file));
  for (const [k, v] of [['training.epochs', 3], ['data.limitTrain', 3000], ['data.limitTest', 500], ['backend', 'cpu']] as const) raw = setPath(raw, k, v) as RawConfig;
  const r = right(await runExperiment(right(decodeConfig(raw, file)), { dataDir: CIFAR_DIR, outDir: join(mkdtempSync(join(tmpdir(), 'tapegrad-guard-')), 'run'), plots: false }));
  return { history: r.history.map(({ seconds: _s, ...rest }) => rest), testAccuracy: r.testAccuracy, testLoss: r.testLoss };
};

describe('the paper preset, to the bit', () => {
  it.each([
    ['headline', 'examples/configs/headline.yaml'],
    ['twoLayerTanhFine', 'test/fixtures/guard-two-layer-tanh-fine.yaml'],
  ] as const)('%s: the recorded history and test numbers', async (name, file) => {
    expect(await rerun(file)).toEqual(fixture[name]);
  });
});
