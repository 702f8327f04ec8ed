/**
 * Sweeps and resumes that keep their word: a diverged point is a row of the
 * table (and stays one when the sweep is continued), a continued sweep with
 * other settings is refused, a damaged result is a one-line error, and a run
 * extended with more epochs equals a run trained that long from the start.
 */
import * as E from 'fp-ts/lib/Either.js';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeConfig, setPath, type RawConfig } from '../../src/experiments/config.js';
import { runExperiment } from '../../src/experiments/run.js';
import { runSweep } from '../../src/experiments/sweep.js';
import { createRunPool } from '../../src/experiments/parallel.js';
import type { CifarData } from '../../src/data/index.js';
import { CIFAR_DIR } from '../data/location.js';
import { left, right } from '../helpers.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'tapegrad-sweeprel-'));
const dataCache = new Map<string, CifarData>();
const base = {
  name: 'div',
  backend: 'cpu',
  model: { hidden: [8], activation: 'identity' },
  data: { limitTrain: 600, limitTest: 100 },
  training: { epochs: 2, optimizer: { kind: 'momentum', lr: 0.001, momentum: 0.8 } },
};
/** lr 1e30 overflows float32 within the first batches: the loss becomes non-finite in epoch 1. */
const diverging = {
  ...base,
  sweep: { keys: ['training.optimizer.lr'], points: [[0.001], [1e30]], paper: [{ values: [1e30], valAccuracy: 5, earlyStop: 'did not converge' }] },
} as RawConfig;
const opts = { dataDir: CIFAR_DIR, plots: false, dataCache };
const strip = <T extends { dir: string }>(rows: readonly T[]) => rows.map(({ dir: _d, ...r }) => r);

describe('a diverging grid point', () => {
  it('is a row "diverged at epoch E", the table is written, and a continued sweep reads it back', async () => {
    const dir = join(tmp(), 'sweep');
    const s = right(await runSweep(diverging, { ...opts, outDir: dir }));
    expect(s.rows[1]).toMatchObject({ values: [1e30], divergedAt: 1, epochsRun: 0 });
    expect(Number.isNaN(s.rows[1]!.valAccuracy)).toBe(true);
    expect(s.best?.values).toEqual([0.001]);
    const md = readFileSync(join(dir, 'table.md'), 'utf8');
    expect(md).toMatch(/\| 1e\+30 \| diverged at epoch 1 \| - \| diverged at epoch 1 \| 5\.00% \| did not converge \|/);
    expect(readFileSync(join(dir, 'table.csv'), 'utf8').split('\n')[2]).toBe('1e+30,,-,,0,1,5,did not converge');
    const run = JSON.parse(readFileSync(join(s.rows[1]!.dir, 'run.json'), 'utf8'));
    expect(run).toMatchObject({ status: 'diverged', epoch: 1 });
    expect(run.error).toMatch(/the training loss became (NaN|Infinity|-Infinity) at epoch 1/);

    // A diverged run is a result: resuming or extending it is refused, naming why.
    for (const extra of [{}, { extendTo: 5, outDir: join(tmp(), 'more') }]) {
      expect(left(await runExperiment(undefined, { ...opts, ...extra }, s.rows[1]!.dir)).message).toBe(
        `${s.rows[1]!.dir}: this run diverged (see its run.json); continuing it would diverge again: start a new run with a lower learning rate`,
      );
    }

    // Continued (the table removed as if interrupted before it was written): nothing trains again, same rows.
    rmSync(join(dir, 'table.md'));
    let events = 0;
    const again = right(
      await runSweep(diverging, {
        ...opts,
        outDir: dir,
        onEvent: () => {
          events++;
        },
      }),
    );
    expect(events).toBe(0);
    expect(strip(again.rows)).toEqual(strip(s.rows));
    expect(existsSync(join(dir, 'table.md'))).toBe(true);
  });
});

describe('a diverging grid point on the pool', () => {
  it('crosses from the worker as the same row', async () => {
    const inTurn = right(await runSweep(diverging, { ...opts, outDir: join(tmp(), 'turn') }));
    const pool = createRunPool(2, { dataDir: CIFAR_DIR, plots: false });
    try {
      const side = right(await runSweep(diverging, { ...opts, pool, outDir: join(tmp(), 'side') }));
      expect(strip(side.rows)).toEqual(strip(inTurn.rows));
      expect(side.rows[1]!.divergedAt).toBe(1);
    } finally {
      await pool.close();
    }
  });
});

describe('continuing a sweep', () => {
  it('with other settings (--epochs) is refused naming the difference; a damaged result is one line', async () => {
    const dir = join(tmp(), 'sweep');
    const s = right(await runSweep(diverging, { ...opts, outDir: dir }));
    rmSync(join(dir, 'table.md'));
    const more = setPath(diverging, 'training.epochs', 3) as RawConfig;
    expect(left(await runSweep(more, { ...opts, outDir: dir })).message).toBe(
      `${dir} holds a sweep of another config (config.training.epochs: 2 there, 3 now): continue it with the same config and flags, or choose another --out`,
    );
    const result = join(s.rows[0]!.dir, 'result.json');
    writeFileSync(result, readFileSync(result, 'utf8').slice(0, 100));
    const m = left(await runSweep(diverging, { ...opts, outDir: dir })).message;
    expect(m.split('\n')).toHaveLength(1);
    expect(m).toMatch(new RegExp(`^${result.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: is not valid JSON .*move the run folder away and run again`));
  });

  it('two sweeps started at once into one folder: one runs, the other is refused', async () => {
    const dir = join(tmp(), 'both');
    const [a, b] = await Promise.all([runSweep(diverging, { ...opts, outDir: dir }), runSweep(diverging, { ...opts, outDir: dir })]);
    const lefts = [a, b].filter(E.isLeft);
    expect(lefts).toHaveLength(1);
    expect(lefts[0]!.left.message).toMatch(new RegExp(`both is in use by process ${process.pid}`));
    expect(right([a, b].find(E.isRight)!).rows).toHaveLength(2);
  });

  it("into a folder of someone else's files is refused, and the files stay", async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'notes.txt'), 'mine');
    expect(left(await runSweep(diverging, { ...opts, outDir: dir })).message).toMatch(
      /is not empty and is not a tapegrad sweep folder \(it holds notes\.txt\)/,
    );
    expect(readFileSync(join(dir, 'notes.txt'), 'utf8')).toBe('mine');
  });
});

describe('resuming a run interrupted before its first epoch', () => {
  it('starts it again in its folder (no refusal), to the same history as an uninterrupted run', async () => {
    const c2 = right(decodeConfig({ ...base, name: 'zero' }));
    const ctl = new AbortController();
    ctl.abort();
    const stopped = right(await runExperiment(c2, { ...opts, outDir: join(tmp(), 'zero'), signal: ctl.signal }));
    expect(stopped.interrupted).toBe(true);
    expect(stopped.history).toEqual([]);
    expect(existsSync(join(stopped.dir, 'checkpoint.json'))).toBe(false);
    expect(JSON.parse(readFileSync(join(stopped.dir, 'run.json'), 'utf8'))).toMatchObject({ status: 'interrupted', epochsFinished: 0 });
    const resumed = right(await runExperiment(undefined, opts, stopped.dir));
    const whole = right(await runExperiment(c2, { ...opts, outDir: join(tmp(), 'whole') }));
    const noTime = (h: readonly { seconds: number }[]) => h.map(({ seconds: _s, ...r }) => r);
    expect(noTime(resumed.history)).toEqual(noTime(whole.history));
    expect(JSON.parse(readFileSync(join(stopped.dir, 'run.json'), 'utf8'))).toMatchObject({ status: 'finished', resumedAfter: 'interrupted' });
  });
});

describe('a run that fails mid-way', () => {
  it('returns one line, records failed with the error in run.json (keeping its seed), and frees its folder', async () => {
    const c2 = right(decodeConfig({ ...base, name: 'fails', seed: 7 }));
    const out = join(tmp(), 'fails');
    const r = await runExperiment(c2, {
      ...opts,
      outDir: out,
      onEvent: (e) => {
        if (e.type === 'epoch') throw new Error('the listener broke\nsecond line');
      },
    });
    expect(left(r).message).toBe('the listener broke');
    expect(JSON.parse(readFileSync(join(out, 'run.json'), 'utf8'))).toMatchObject({ status: 'failed', seed: 7, error: 'the listener broke\nsecond line' });
    expect(existsSync(join(out, 'run.lock'))).toBe(false);
  });
});

describe('extending a run with more epochs', () => {
  it('trains into a new folder, leaves the original alone, and equals a run of that length from the start', async () => {
    const c2 = right(decodeConfig({ ...base, name: 'ext' }));
    const c3 = right(decodeConfig({ ...base, name: 'ext', training: { ...base.training, epochs: 3 } }));
    const root = tmp();
    const two = right(await runExperiment(c2, { ...opts, outDir: join(root, 'two') }));
    const before = readFileSync(join(two.dir, 'result.json'), 'utf8');
    const ext = right(await runExperiment(undefined, { ...opts, extendTo: 3, outDir: join(root, 'ext') }, two.dir));
    const three = right(await runExperiment(c3, { ...opts, outDir: join(root, 'three') }));
    const noTime = (h: readonly { seconds: number }[]) => h.map(({ seconds: _s, ...r }) => r);
    expect(noTime(ext.history)).toEqual(noTime(three.history));
    expect(ext.testAccuracy).toBe(three.testAccuracy);
    expect(readFileSync(join(two.dir, 'result.json'), 'utf8')).toBe(before);
    expect(JSON.parse(readFileSync(join(ext.dir, 'run.json'), 'utf8'))).toMatchObject({ extends: two.dir, resumedFromEpoch: 2, status: 'finished' });
    // Fewer epochs than already trained cannot extend anything.
    expect(left(await runExperiment(undefined, { ...opts, extendTo: 2, outDir: join(root, 'less') }, three.dir)).message).toMatch(
      /already trained 3 epochs: --epochs 2 must be more than that/,
    );
  });

  it('a finished run resumed without --epochs is refused, naming how to extend it', async () => {
    const c2 = right(decodeConfig({ ...base, name: 'fin' }));
    const r = right(await runExperiment(c2, { ...opts, outDir: join(tmp(), 'fin') }));
    expect(E.isLeft(await runExperiment(undefined, opts, r.dir))).toBe(true);
    expect(left(await runExperiment(undefined, opts, r.dir)).message).toBe(
      `${r.dir}: this run already finished; nothing to resume (to train it further, add --epochs N: a new folder continues it from its last epoch)`,
    );
  });
});
