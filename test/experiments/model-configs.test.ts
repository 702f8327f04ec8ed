/**
 * Spec models through configs and the CLI: the example configs decode and
 * build; a CNN config trains from `tapegrad train`, its model file loads and
 * evaluates to the test accuracy the run reported, and an interrupted run's
 * checkpoint (with the architecture and batchNorm's running statistics) resumes
 * to the same history.
 */
import * as E from 'fp-ts/lib/Either.js';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadCifar100 } from '../../src/data/index.js';
import { decodeConfig, readRawConfig } from '../../src/experiments/config.js';
import { modelFor, runExperiment } from '../../src/experiments/run.js';
import { evaluate, loadModel, outputShape } from '../../src/nn/index.js';
import { right } from '../helpers.js';
import { CIFAR_DIR } from '../data/location.js';

const CLI = ['--import', 'tsx', 'src/cli/main.ts'];

describe('configs with a model spec', () => {
  const files: ReadonlyArray<[string, number]> = [
    ['examples/configs/residual-mlp.yaml', 20],
    ['examples/configs/cnn.yaml', 20],
    ['examples/configs/mlp-recipe.yaml', 20],
    ['examples/configs/cnn-coarse.yaml', 20],
    ['examples/configs/cnn-fine.yaml', 100],
  ];
  for (const [file, classes] of files) {
    it(`${file} decodes, builds, and gives ${classes} class scores`, () => {
      const c = right(decodeConfig(right(readRawConfig(file))));
      expect(c.model.layers).toBeDefined();
      expect(c.data.labels).toBe(classes === 20 ? 'coarse' : 'fine');
      const m = right(modelFor(c, classes));
      expect(m.spec?.kind).toBe('sequential');
      expect(right(outputShape({ kind: 'sequential', input: [...c.model.input!], layers: [...c.model.layers!] }))).toEqual([classes]);
    });
  }

  it('a bad layer in a config exits 2 naming it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tapegrad-spec-'));
    writeFileSync(join(dir, 'bad.yaml'), 'name: x\nmodel:\n  layers:\n    - { type: dense, units: 0 }\n');
    const r = spawnSync('node', [...CLI, 'train', '--config', join(dir, 'bad.yaml')], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toMatch(/^tapegrad: .*bad\.yaml: invalid config: model\.layers\[0\]\.units: expected a positive integer, got 0$/);
  });

  it('tapegrad train runs a small CNN config; model.json loads and evaluates to the reported test accuracy', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tapegrad-spec-'));
    const cfg = {
      name: 'tiny-cnn',
      preset: 'defaults',
      seed: 1,
      backend: 'cpu',
      data: { labels: 'coarse', limitTrain: 500, limitTest: 200 },
      model: {
        input: [3, 32, 32],
        layers: [
          { type: 'avgPool2d', size: 4 },
          { type: 'conv2d', filters: 4, kernel: 3, padding: 1 },
          { type: 'batchNorm' },
          { type: 'relu' },
          { type: 'maxPool2d', size: 2 },
          { type: 'flatten' },
          { type: 'dense', units: 20 },
        ],
      },
      training: { epochs: 2, batchSize: 50, optimizer: { kind: 'adam', lr: 0.01 } },
    };
    writeFileSync(join(dir, 'cnn.yaml'), stringify(cfg));
    const out = join(dir, 'run');
    const r = spawnSync('node', [...CLI, 'train', '--config', join(dir, 'cnn.yaml'), '--out', out], {
      encoding: 'utf8',
      env: { ...process.env, CIFAR100_DIR: CIFAR_DIR },
    });
    expect(r.status, r.stderr).toBe(0);
    const result = JSON.parse(readFileSync(join(out, 'result.json'), 'utf8'));
    const loaded = right(loadModel(join(out, 'model.json')));
    expect(loaded.model.spec).toEqual({ kind: 'sequential', ...cfg.model });
    const data = right(loadCifar100({ dir: CIFAR_DIR, labels: 'coarse', normalization: 'per-image', seed: 1, limitTrain: 500, limitTest: 200 }));
    expect(evaluate(loaded.model, loaded.params, data.test, { layerState: loaded.layerState }).accuracy).toBe(result.testAccuracy);
  });

  it('an interrupted spec run resumes from its checkpoint to the same history', async () => {
    const c = right(
      decodeConfig({
        name: 'bn-mlp',
        preset: 'defaults',
        seed: 2,
        backend: 'cpu',
        data: { labels: 'coarse', limitTrain: 400, limitTest: 100 },
        model: {
          layers: [{ type: 'dense', units: 16 }, { type: 'batchNorm' }, { type: 'relu' }, { type: 'dropout', rate: 0.2 }, { type: 'dense', units: 20 }],
        },
        training: { epochs: 3, batchSize: 40, optimizer: { kind: 'momentum', lr: 0.05, momentum: 0.9 } },
      }),
    );
    const full = right(await runExperiment(c, { outDir: mkdtempSync(join(tmpdir(), 'tapegrad-spec-')), plots: false, dataDir: CIFAR_DIR }));
    const dir = mkdtempSync(join(tmpdir(), 'tapegrad-spec-'));
    const ctl = new AbortController();
    const part = right(
      await runExperiment(c, {
        outDir: dir,
        plots: false,
        dataDir: CIFAR_DIR,
        signal: ctl.signal,
        onEvent: (e) => {
          if (e.type === 'batch' && e.epoch === 2 && e.batch === 3) ctl.abort();
        },
      }),
    );
    expect(part.interrupted).toBe(true);
    // The checkpoint holds the architecture beside the weights, optimizer state and batchNorm's statistics.
    const ck = JSON.parse(readFileSync(join(dir, 'checkpoint.json'), 'utf8'));
    expect(ck.architecture).toEqual({ kind: 'sequential', input: [3072], layers: c.model.layers });
    expect(ck.layerState.map((t: { path: string }) => t.path)).toEqual(['[1].mean', '[1].var']);
    const resumed = await runExperiment(undefined, { plots: false, dataDir: CIFAR_DIR }, dir);
    expect(E.isRight(resumed)).toBe(true);
    const strip = (h: readonly { seconds: number }[]) => h.map(({ seconds: _s, ...rest }) => rest);
    expect(strip(right(resumed).history)).toEqual(strip(full.history));
    expect(right(resumed).testAccuracy).toBe(full.testAccuracy);
  });
});
