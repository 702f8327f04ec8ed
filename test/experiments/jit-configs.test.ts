/**
 * The shipped configs through `runExperiment` with jitted steps (the default)
 * and with `training.jit: false`, on slices of the genuine CIFAR-100: the same
 * histories, test numbers and saved weights, bit for bit. The headline config
 * (the report's preset: its jitted run is also what the paper guard pins) and
 * cnn-coarse (batchNorm state, dropout drawn from each step's key, crops and
 * flips, Nesterov momentum with weight decay, a cosine schedule).
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeConfig, readRawConfig, setPath, type RawConfig } from '../../src/experiments/config.js';
import { runExperiment } from '../../src/experiments/run.js';
import { CIFAR_DIR } from '../data/location.js';
import { right } from '../helpers.js';

const run = async (file: string, settings: readonly (readonly [string, unknown])[], jit: boolean) => {
  let raw = right(readRawConfig(file));
  for (const [k, v] of [...settings, ['training.jit', jit]] as const) raw = setPath(raw, k, v) as RawConfig;
  const out = join(mkdtempSync(join(tmpdir(), 'tapegrad-jit-')), 'run');
  const r = right(await runExperiment(right(decodeConfig(raw, file)), { dataDir: CIFAR_DIR, outDir: out, plots: false }));
  // The saved parameters (and batchNorm state) as base64 of their float32 bytes; `extra` holds the config, which names jit.
  const model = JSON.parse(readFileSync(join(out, 'model.json'), 'utf8')) as { params: unknown; architecture: unknown };
  return {
    history: r.history.map(({ seconds: _s, ...rest }) => rest),
    testAccuracy: r.testAccuracy,
    testLoss: r.testLoss,
    weights: JSON.stringify([model.architecture, model.params]),
  };
};

describe('shipped configs: jitted steps give the eager run, bit for bit', () => {
  it.each([
    [
      'headline',
      'examples/configs/headline.yaml',
      [
        ['training.epochs', 2],
        ['data.limitTrain', 2000],
        ['data.limitTest', 300],
        ['backend', 'cpu'],
      ],
    ],
    [
      'cnn-coarse',
      'examples/configs/cnn-coarse.yaml',
      [
        ['training.epochs', 2],
        ['data.limitTrain', 400],
        ['data.limitTest', 100],
        ['backend', 'cpu'],
      ],
    ],
  ] as const)(
    '%s',
    async (_name, file, settings) => {
      const eager = await run(file, settings, false);
      const jitted = await run(file, settings, true);
      expect(jitted.history).toEqual(eager.history);
      expect(jitted.testAccuracy).toBe(eager.testAccuracy);
      expect(jitted.testLoss).toBe(eager.testLoss);
      expect(jitted.weights === eager.weights).toBe(true);
    },
    300_000,
  );
});
