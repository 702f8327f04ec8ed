/**
 * Sweeps: a grid expands in order; an interrupted sweep, run again into the same
 * folder, keeps its finished runs, resumes the interrupted one and gives the same
 * table as an uninterrupted sweep.
 */
import * as E from 'fp-ts/lib/Either.js';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { expandGrid, readRawConfig, setPath, type RawConfig } from '../../src/experiments/config.js';
import { runSweep, type SweepRow } from '../../src/experiments/sweep.js';
import { createRunPool } from '../../src/experiments/parallel.js';
import { right } from '../helpers.js';
import { CIFAR_DIR } from '../data/location.js';

const quick = (file: string): RawConfig => {
  let c = right(readRawConfig(file));
  for (const [k, v] of [
    ['training.epochs', 2],
    ['data.limitTrain', 600],
    ['data.limitTest', 200],
    ['backend', 'cpu'],
  ] as const)
    c = setPath(c, k, v) as RawConfig;
  return c;
};

describe('sweeps', () => {
  it('a grid expands with the last key fastest; points are taken as listed', () => {
    const t3 = expandGrid(right(readRawConfig('examples/configs/table3.yaml')));
    expect(t3.map((c) => c.values)).toEqual([
      [0.7, 0.001],
      [0.7, 0.005],
      [0.8, 0.001],
      [0.8, 0.005],
      [0.9, 0.001],
      [0.9, 0.005],
    ]);
    expect((t3[3]!.config.training as { optimizer: { lr: number; momentum: number } }).optimizer).toMatchObject({ momentum: 0.8, lr: 0.005 });
    const t5 = expandGrid(right(readRawConfig('examples/configs/table5.yaml')));
    expect(t5.map((c) => c.values)).toEqual([
      ['relu', 0.001],
      ['relu', 0.005],
      ['sigmoid', 0.005],
      ['sigmoid', 0.05],
    ]);
  });

  it('an interrupted sweep continues to the same table as an uninterrupted one', async () => {
    const cfg = quick('examples/configs/table7.yaml');
    const opts = { dataDir: CIFAR_DIR, plots: false };
    const full = right(await runSweep(cfg, { ...opts, outDir: join(mkdtempSync(join(tmpdir(), 'sweep-')), 'full') }));

    const dir = join(mkdtempSync(join(tmpdir(), 'sweep-')), 'part');
    const ctl = new AbortController();
    const first = right(
      await runSweep(cfg, {
        ...opts,
        outDir: dir,
        signal: ctl.signal,
        onEvent: (e) => {
          if (e.type === 'batch' && e.batch === 2 && e.epoch === 2) ctl.abort();
        },
      }),
    );
    expect(first.interrupted).toBe(true);
    const second = await runSweep(cfg, { ...opts, outDir: dir });
    expect(E.isRight(second)).toBe(true);
    const strip = (rows: typeof full.rows) => rows.map(({ dir: _d, ...r }) => r);
    expect(strip(right(second).rows)).toEqual(strip(full.rows));
  });

  it('a finished sweep is refused, or with reuseFinished read back without running or writing anything', async () => {
    const cfg = quick('examples/configs/table7.yaml');
    const opts = { dataDir: CIFAR_DIR, plots: false };
    const dir = join(mkdtempSync(join(tmpdir(), 'sweep-')), 'done');
    const first = right(await runSweep(cfg, { ...opts, outDir: dir }));
    const stamp = () => [join(dir, 'table.md'), ...first.rows.map((r) => join(r.dir, 'result.json'))].map((f) => statSync(f).mtimeMs);
    const before = stamp();
    expect(E.isLeft(await runSweep(cfg, { ...opts, outDir: dir }))).toBe(true);
    let events = 0;
    const again = right(
      await runSweep(cfg, {
        ...opts,
        outDir: dir,
        reuseFinished: true,
        onEvent: () => {
          events++;
        },
      }),
    );
    expect(again.rows.map(({ dir: _d, ...r }) => r)).toEqual(first.rows.map(({ dir: _d, ...r }) => r));
    expect(events).toBe(0);
    expect(stamp()).toEqual(before);
  });

  it('runs side by side on a pool give the same table as runs in turn, interrupted or not', async () => {
    const cfg = quick('examples/configs/table7.yaml');
    const opts = { dataDir: CIFAR_DIR, plots: false };
    const strip = (rows: readonly SweepRow[]) => rows.map(({ dir: _d, ...r }) => r);
    const inTurn = right(await runSweep(cfg, { ...opts, outDir: join(mkdtempSync(join(tmpdir(), 'sweep-')), 'turn') }));

    const pool = createRunPool(2, opts);
    try {
      const side = right(await runSweep(cfg, { ...opts, pool, outDir: join(mkdtempSync(join(tmpdir(), 'sweep-')), 'side') }));
      expect(strip(side.rows)).toEqual(strip(inTurn.rows));
      // Both runs really went through the pool's workers, one thread each.
      for (const row of side.rows) expect(JSON.parse(readFileSync(join(row.dir, 'run.json'), 'utf8')).backend).toMatch(/1 thread/);
    } finally {
      await pool.close();
    }

    const dir = join(mkdtempSync(join(tmpdir(), 'sweep-')), 'part');
    const ctl = new AbortController();
    const stopping = createRunPool(2, { ...opts, signal: ctl.signal });
    try {
      const first = right(
        await runSweep(cfg, {
          ...opts,
          pool: stopping,
          outDir: dir,
          signal: ctl.signal,
          onRunEvent: (_i, _n, _v, e) => {
            if (e.type === 'epoch' && e.record.epoch === 1) ctl.abort();
          },
        }),
      );
      expect(first.interrupted).toBe(true);
    } finally {
      await stopping.close();
    }
    const resumed = createRunPool(2, opts);
    try {
      const second = right(await runSweep(cfg, { ...opts, pool: resumed, outDir: dir }));
      expect(second.interrupted).toBe(false);
      expect(strip(second.rows)).toEqual(strip(inTurn.rows));
    } finally {
      await resumed.close();
    }
  });
});
