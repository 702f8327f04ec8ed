/**
 * reproduce's "Beyond the report" section: the recipes run as ordinary runs, and
 * the page's numbers are the runs' own (read from their result.json), beside the
 * report's best rows as the table configs hold them; a continued reproduce reads
 * finished recipes back; a missing recipe is one clear error.
 */
import * as E from 'fp-ts/lib/Either.js';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { paperBest, readPaperRows } from '../../src/experiments/beyond.js';
import { readReproduceFile, reproduce } from '../../src/experiments/reproduce.js';
import { right } from '../helpers.js';
import { CIFAR_DIR } from '../data/location.js';

const quick = { dataDir: CIFAR_DIR, only: ['beyond'] as const, overrides: { epochs: 1, limitTrain: 300, limitTest: 100 } };
const pct = (x: number) => `${(x * 100).toFixed(2)}%`;

describe('reproduce: beyond the report', () => {
  it('reproduce.yaml lists the beyond section and its recipes', () => {
    const f = right(readReproduceFile('examples/configs/reproduce.yaml'));
    expect(f.sections).toContain('beyond');
    expect(f.recipes).toContain('mlp-recipe.yaml');
  });

  it("runs each recipe as a run, and the page shows the run's own numbers beside the report's best row; a continued reproduce reads it back", async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'beyond-')), 'report');
    const first = right(await reproduce(out, { ...quick, only: [...quick.only] }));
    const runDir = join(out, 'beyond', 'mlp-recipe');
    const result = JSON.parse(readFileSync(join(runDir, 'result.json'), 'utf8')) as {
      valAccuracy: number;
      testAccuracy: number;
      epochsRun: number;
      seconds: number;
    };
    const history = JSON.parse(readFileSync(join(runDir, 'history.json'), 'utf8')) as { seconds: number }[];
    expect(result.epochsRun).toBe(1);
    const page = first.report;
    expect(page).toMatch(/## Beyond the report: recipes/);
    // Only the recipes ran: the page names their configs as the conventions, not the report's preset.
    expect(page).toMatch(/Conventions: each recipe's own config/);
    expect(page).not.toMatch(/`paper` preset \(the conventions section of tapegrad's README\) —/);
    const row = page.split('\n').find((l) => l.startsWith('| recipe **mlp-recipe**'));
    expect(row).toBeDefined();
    const cells = row!.split('|').map((c) => c.trim());
    // mlp-recipe.yaml's network: weights and biases, batchNorm's gain and bias, and its two running statistics (counted with the parameters).
    const recipeCount = 3072 * 1024 + 1024 + 4 * 1024 + (1024 * 512 + 512) + 4 * 512 + (512 * 20 + 20);
    // Run, labels, model, epochs, validation, test, wall time, sum of epoch times.
    expect(cells.slice(2, 9)).toEqual([
      'coarse',
      `3072 → dense 1024 → batchNorm → relu → dropout 0.3 → dense 512 → batchNorm → relu → dropout 0.3 → dense 20 (${recipeCount.toLocaleString('en-US')} parameters)`,
      String(result.epochsRun),
      pct(result.valAccuracy),
      pct(result.testAccuracy),
      `${result.seconds.toFixed(1)} s`,
      `${history.reduce((s, h) => s + h.seconds, 0).toFixed(1)} s`,
    ]);
    // Beside the report's best coarse row, as the table configs hold it.
    const { best, tested } = paperBest(right(readPaperRows('examples/configs', ['table3', 'table4', 'table5', 'table6', 'table7', 'table8'])), 'coarse');
    expect(page).toContain(`| the report, best validation row: ${best!.table} (${best!.setting}) | coarse |`);
    expect(page).toContain(`| ${best!.valAccuracy.toFixed(2)}% | not given |`);
    expect(page).toContain(`| ${tested!.valAccuracy.toFixed(2)}% | ${tested!.testAccuracy!.toFixed(2)}% |`);
    expect(page).toContain(`| Beyond: mlp-recipe (coarse) | ${pct(result.valAccuracy)} | ${best!.valAccuracy.toFixed(2)}% (the report's best coarse row) |`);
    // Its curves, drawn by the same helper as the tables' figures.
    expect(page).toContain('![mlp-recipe accuracy](beyond/mlp-recipe/accuracy.png)');
    expect(existsSync(join(runDir, 'loss.png'))).toBe(true);

    // Continued into the same folder (the report removed, as after an interruption): read back, not run again.
    const stamp = statSync(join(runDir, 'result.json')).mtimeMs;
    rmSync(join(out, 'report.md'));
    let events = 0;
    const again = right(
      await reproduce(out, {
        ...quick,
        only: [...quick.only],
        onEvent: () => {
          events++;
        },
      }),
    );
    expect(events).toBe(0);
    expect(statSync(join(runDir, 'result.json')).mtimeMs).toBe(stamp);
    expect(again.report).toContain(row!);
    expect(again.report).toMatch(/the recipes were read back from it, not run again/);
  });

  it('a recipe file that does not exist is one clear error, before anything runs', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'beyond-')), 'report');
    const r = await reproduce(out, { ...quick, only: [...quick.only], recipes: ['mlp-recipe.yaml', 'cnn-nope.yaml'] });
    expect(E.isLeft(r)).toBe(true);
    if (E.isLeft(r))
      expect(r.left.message).toBe(
        "examples/configs/cnn-nope.yaml: no such recipe config (listed under 'recipes:' in the recipes given): add the file, or remove it from the list",
      );
    expect(existsSync(join(out, 'beyond', 'mlp-recipe'))).toBe(false);
  });
});
