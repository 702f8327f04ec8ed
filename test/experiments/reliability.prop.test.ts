/**
 * The files of a run folder cannot mislead: a checkpoint, model, config, result
 * or history with any bytes flipped, or cut short, loads either as a clean,
 * one-line error or as a value identical to what was written; never a thrown
 * error, never different numbers. Checkpoints also pass consistency checks that
 * a checksum alone cannot give (a file resealed after an edit).
 */
import * as E from 'fp-ts/lib/Either.js';
import fc from 'fast-check';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../src/experiments/checkpoint.js';
import { decodeConfig, type ResolvedConfig } from '../../src/experiments/config.js';
import { modelFor, readFinishedRun, readRunConfig, runExperiment, type RunResult } from '../../src/experiments/run.js';
import { leaves, type Tree } from '../../src/autodiff/index.js';
import { loadModel, sealJson, type FitState } from '../../src/nn/index.js';
import { CIFAR_DIR } from '../data/location.js';
import { left, right, type EditableJson } from '../helpers.js';

let c: ResolvedConfig;
let run: RunResult;
let dir: string;

beforeAll(async () => {
  c = right(decodeConfig({ name: 'prop', backend: 'cpu', model: { hidden: [8] }, training: { epochs: 2 }, data: { limitTrain: 300, limitTest: 50 } }));
  dir = join(mkdtempSync(join(tmpdir(), 'tapegrad-prop-')), 'run');
  run = right(await runExperiment(c, { outDir: dir, dataDir: CIFAR_DIR, plots: false }));
});

const numbers = (t: Tree): number[][] => leaves(t).map((l) => [...l.toTypedArray()]);
const stateValue = (s: FitState) => ({
  ...s,
  params: numbers(s.params),
  optState: numbers(s.optState),
  best: s.best && { ...s.best, params: numbers(s.best.params) },
});

/** Each file with the loader that reads it, as a plain comparable value or a Left. */
const loaders: Record<string, (d: string) => E.Either<Error, unknown>> = {
  'checkpoint.json': (d) => E.map(stateValue)(loadCheckpoint(d, right(modelFor(c, 20)), c)),
  'model.json': (d) =>
    E.map((m: { params: Tree; model: { spec: unknown }; extra: unknown }) => ({ p: numbers(m.params), spec: m.model.spec, extra: m.extra }))(
      loadModel(join(d, 'model.json')),
    ),
  'config.json': (d) => readRunConfig(d),
  'result.json': (d) => readFinishedRun(d) ?? E.left(new Error('no result')),
  'history.json': (d) => readFinishedRun(d) ?? E.left(new Error('no result')),
};

const copyRun = (): string => {
  const to = mkdtempSync(join(tmpdir(), 'tapegrad-corrupt-'));
  for (const f of readdirSync(dir)) if (f.endsWith('.json')) copyFileSync(join(dir, f), join(to, f));
  return to;
};

const stripDir = (v: unknown): unknown => (v !== null && typeof v === 'object' && 'dir' in v ? { ...(v as object), dir: '' } : v);

describe('a corrupted run file is an error or the same value, never a crash or wrong numbers', () => {
  it('holds for random byte changes and truncations of every file', () => {
    const originals = Object.fromEntries(Object.entries(loaders).map(([f, load]) => [f, stripDir(right(load(dir)))]));
    let refused = 0,
      same = 0;
    fc.assert(
      fc.property(
        fc.constantFrom(...Object.keys(loaders)),
        fc.array(fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 3 }),
        fc.option(fc.nat(), { freq: 4 }),
        (file, edits, cut) => {
          const d = copyRun();
          let bytes = readFileSync(join(d, file));
          for (const e of edits) bytes[e.at % bytes.length] = e.byte;
          if (cut !== null) bytes = bytes.subarray(0, cut % bytes.length);
          writeFileSync(join(d, file), bytes);
          let out: E.Either<Error, unknown>;
          try {
            out = loaders[file]!(d);
          } catch (e) {
            throw new Error(`${file}: the loader threw instead of returning a Left: ${(e as Error).message}`);
          }
          if (E.isLeft(out)) {
            expect(out.left.message.split('\n')).toHaveLength(1);
            expect(out.left.message).toContain(d);
            refused++;
          } else {
            expect(stripDir(out.right)).toEqual(originals[file]);
            same++;
          }
        },
      ),
      { numRuns: 500, seed: 14 },
    );
    // Nearly every random change is real corruption; the rare harmless one (a byte replaced by itself) reads back the same.
    expect(refused).toBeGreaterThan(400);
    expect(refused + same).toBe(500);
  });

  it('a change that does not alter the content (layout) reads back the same value', () => {
    const d = copyRun();
    const text = readFileSync(join(d, 'config.json'), 'utf8');
    writeFileSync(join(d, 'config.json'), text.replace(/\n {2}/g, '\n\t'));
    expect(readFileSync(join(d, 'config.json'), 'utf8')).not.toBe(text);
    expect(right(readRunConfig(d))).toEqual(c);
  });
});

describe('checkpoints are checked beyond their checksum', () => {
  /** The checkpoint edited and resealed, as a careless tool (or a bug) would leave it. */
  const resealed = (edit: (o: Record<string, EditableJson>) => void): string => {
    const d = copyRun();
    const o = JSON.parse(readFileSync(join(d, 'checkpoint.json'), 'utf8'));
    delete o.sha256;
    edit(o);
    writeFileSync(join(d, 'checkpoint.json'), sealJson(o));
    return d;
  };
  const refusal = (edit: (o: Record<string, EditableJson>) => void): string => {
    const d = resealed(edit);
    const m = left(loadCheckpoint(d, right(modelFor(c, 20)), c)).message;
    expect(m.startsWith(join(d, 'checkpoint.json'))).toBe(true);
    expect(m).toMatch(/resume is refused: start the run again/);
    return m;
  };

  it('loads the checkpoint it wrote as the final state of the run', () => {
    const s = right(loadCheckpoint(dir, right(modelFor(c, 20)), c));
    expect(s.epoch).toBe(2);
    expect(s.history).toEqual(run.history);
    expect(numbers(s.params)).toHaveLength(4);
  });

  it('an epoch that disagrees with the history is refused (999, -5, fewer than the history)', () => {
    expect(
      refusal((o) => {
        o.epoch = 999;
      }),
    ).toMatch(/epoch 999 disagrees with its history of 2 epochs/);
    expect(
      refusal((o) => {
        o.epoch = -5;
      }),
    ).toMatch(/epoch: expected/);
    expect(
      refusal((o) => {
        o.epoch = 1;
      }),
    ).toMatch(/epoch 1 disagrees with its history of 2 epochs/);
    expect(
      refusal((o) => {
        o.epoch = 5;
        o.history = [...o.history, ...o.history, o.history[0]].map((h: EditableJson, i: number) => ({ ...h, epoch: i + 1 }));
      }),
    ).toMatch(/epoch 5 is beyond the run's 2 epochs/);
  });

  it('repeated or reordered history epochs are refused', () => {
    expect(
      refusal((o) => {
        o.history[1].epoch = 1;
      }),
    ).toMatch(/history entry 2 is epoch 1, expected 2/);
  });

  it('NaN weights are named as corruption, not as a diverged run', () => {
    const m = refusal((o) => {
      const f = new Float32Array(new Uint8Array(Buffer.from(o.params[0].data, 'base64')).buffer);
      f[3] = NaN;
      o.params[0].data = Buffer.from(f.buffer).toString('base64');
    });
    expect(m).toMatch(/its weights hold a non-finite number \(.*= NaN\), which training never saves, so the file is corrupt/);
    expect(m).not.toMatch(/learning rate/);
  });

  it('a best epoch outside the history, and a stray key, are refused', () => {
    expect(
      refusal((o) => {
        o.best.epoch = 7;
      }),
    ).toMatch(/best epoch 7 is outside epochs 1\.\.2/);
    expect(
      refusal((o) => {
        o.extra = 1;
      }),
    ).toMatch(/unexpected key "extra"/);
  });
});

describe('results written before files were sealed', () => {
  const legacy = (r: RunResult) => ({
    name: 'prop',
    valAccuracy: r.valAccuracy,
    testAccuracy: r.testAccuracy,
    testLoss: r.testLoss,
    bestEpoch: r.bestEpoch,
    stoppedAt: r.stoppedAt ?? null,
    returnedEpoch: r.returnedEpoch,
    epochsRun: r.history.length,
    backend: 'cpu: old',
    seed: 0,
    seconds: 1.5,
  });

  it('are read back (an old sweep or report continues without redoing them)', () => {
    const d = copyRun();
    writeFileSync(join(d, 'result.json'), JSON.stringify(legacy(run), null, 2));
    const back = right(readFinishedRun(d)!);
    expect(back).toMatchObject({ valAccuracy: run.valAccuracy, testAccuracy: run.testAccuracy, backend: 'cpu: old', seconds: 1.5 });
    expect(back.history).toEqual(run.history);
  });

  it('only with exactly their keys, and a history of the length they state', () => {
    const d = copyRun();
    writeFileSync(join(d, 'result.json'), JSON.stringify({ ...legacy(run), outcome: 'finished' }));
    expect(left(readFinishedRun(d)!).message).toMatch(/has no checksum \(sha256\) and is not a result of an earlier tapegrad either/);
    writeFileSync(join(d, 'result.json'), JSON.stringify({ ...legacy(run), epochsRun: 5 }));
    expect(left(readFinishedRun(d)!).message).toMatch(/history\.json: 2 epochs, but result\.json says 5/);
  });
});
