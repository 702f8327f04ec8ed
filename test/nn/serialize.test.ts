/**
 * Model files are verified before use: their checksum, their architecture
 * (before anything is allocated for it), their shapes, finite weights. Every
 * failure is a Left naming the file; loadModel never throws.
 */
import * as E from 'fp-ts/lib/Either.js';
import { mkdirSync, mkdtempSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Key } from '../../src/core/index.js';
import { initialState, loadModel, mlp, modelFromSpec, saveModel, sealJson, unsealJson, type MlpParams } from '../../src/nn/index.js';
import { left, right, type EditableJson } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'tapegrad-serialize-'));
const model = mlp([6, 4, 3], { activation: 'tanh', init: 'glorot-uniform' });
const params = model.layer.init(new Key(1));
const file = join(dir, 'model.json');
saveModel(file, model, params, { note: 'n' });
const saved = () => JSON.parse(readFileSync(file, 'utf8')) as Record<string, EditableJson>;
/** Writes an edited copy, resealed so the check under test is reached rather than the checksum. */
const edited = (name: string, edit: (o: Record<string, EditableJson>) => void): string => {
  const o = saved();
  delete o['sha256'];
  edit(o);
  const f = join(dir, name);
  writeFileSync(f, sealJson(o));
  return f;
};
/** A float32 tensor's base64 with one value replaced. */
const withValue = (b64: string, i: number, v: number): string => {
  const f = new Float32Array(new Uint8Array(Buffer.from(b64, 'base64')).buffer);
  f[i] = v;
  return Buffer.from(f.buffer).toString('base64');
};

describe('sealed JSON', () => {
  it('round-trips a value and refuses any change to it', () => {
    const text = sealJson({ a: 1, b: [0.1, 'x'] }, 2);
    expect(right(unsealJson('f', text))).toEqual({ a: 1, b: [0.1, 'x'] });
    expect(left(unsealJson('f', text.replace('0.1', '0.2'))).message).toBe('f: fails its checksum: the file was changed or corrupted after it was written');
    expect(left(unsealJson('f', '{"a":1}')).message).toMatch(/has no checksum/);
    expect(right(unsealJson('f', '{"a":1}', false))).toEqual({ a: 1 });
  });
});

describe('loadModel', () => {
  it('reads back exactly what was saved', () => {
    const m = right(loadModel(file));
    expect((m.params as MlpParams).map((p: MlpParams[number]) => [...p.w.toTypedArray(), ...p.b.toTypedArray()])).toEqual(
      params.map((p) => [...p.w.toTypedArray(), ...p.b.toTypedArray()]),
    );
    expect(m.extra).toEqual({ note: 'n' });
  });

  it('a batchNorm model saved without its state (older files) loads with the initial state; a state tensor short of the architecture is refused', () => {
    const bnModel = modelFromSpec({
      kind: 'sequential',
      input: [5],
      layers: [{ type: 'dense', units: 4 }, { type: 'batchNorm' }, { type: 'dense', units: 3 }],
    });
    const p = bnModel.layer.init(new Key(2));
    const bnFile = join(dir, 'bn.json');
    saveModel(bnFile, bnModel, p, null, initialState(bnModel.layer));
    const o = JSON.parse(readFileSync(bnFile, 'utf8')) as Record<string, EditableJson>;
    expect(o['state']).toHaveLength(2);
    delete o['sha256'];
    const { state: saved, ...withoutState } = o;
    const old = join(dir, 'bn-old.json');
    writeFileSync(old, sealJson(withoutState));
    const loaded = right(loadModel(old));
    const bn = (loaded.layerState as readonly unknown[]).find((st) => st !== null && typeof st === 'object' && 'mean' in st) as {
      mean: { toTypedArray(): ArrayLike<number> };
      var: { toTypedArray(): ArrayLike<number> };
    };
    expect(Array.from(bn.mean.toTypedArray())).toEqual([0, 0, 0, 0]);
    expect(Array.from(bn.var.toTypedArray())).toEqual([1, 1, 1, 1]);
    const short = join(dir, 'bn-short.json');
    writeFileSync(short, sealJson({ ...withoutState, state: [saved[0]] }));
    expect(left(loadModel(short)).message).toMatch(/holds \d+ weights but its architecture needs \d+: the file is corrupt/);
  });

  it('refuses an edited weight by its checksum', () => {
    const o = saved();
    o['params'][0].data = withValue(o['params'][0].data, 0, 0.5);
    const f = join(dir, 'edited.json');
    writeFileSync(f, JSON.stringify(o));
    expect(left(loadModel(f)).message).toBe(`${f}: fails its checksum: the file was changed or corrupted after it was written; save or train the model again`);
  });

  it('refuses NaN and Infinity weights, naming the weight', () => {
    const at = (o: Record<string, EditableJson>, path: string) => (o['params'] as { path: string; data: string }[]).find((t) => t.path === path)!;
    const nan = edited('nan.json', (o) => {
      at(o, '[1].w').data = withValue(at(o, '[1].w').data, 5, NaN);
    });
    expect(left(loadModel(nan)).message).toMatch(/weight \[1\]\.w\[5\] = NaN is not finite: these weights cannot be used/);
    const inf = edited('inf.json', (o) => {
      at(o, '[0].b').data = withValue(at(o, '[0].b').data, 0, -Infinity);
    });
    expect(left(loadModel(inf)).message).toMatch(/weight \[0\]\.b\[0\] = -Infinity is not finite/);
  });

  it('refuses absurd or short architectures before allocating, without throwing', () => {
    const huge = edited('huge.json', (o) => {
      o['architecture'].sizes = [3072, 1e9, 20];
    });
    expect(left(loadModel(huge)).message).toMatch(
      /architecture\.sizes \[3072,1000000000,20\] means 3\.09e\+12 weights, more than the 1073741824 tapegrad loads/,
    );
    const one = edited('one.json', (o) => {
      o['architecture'].sizes = [3072];
    });
    expect(left(loadModel(one)).message).toMatch(/needs at least an input and an output width/);
    const wide = edited('wide.json', (o) => {
      o['architecture'].sizes = [6, 400000, 3];
    });
    expect(left(loadModel(wide)).message).toBe(
      `${wide}: holds 43 weights but its architecture needs 4000003: the file is corrupt; save or train the model again`,
    );
  });

  it('refuses an architecture just under the cap beside small tensors before allocating its weights', () => {
    // 3072·340000 + 340000 + 340000·20 + 20 ≈ 1.05e9 weights (4.2 GB), under MAX_MODEL_PARAMS: only the file's own tensors can say no.
    const under = edited('under.json', (o) => {
      o['architecture'].sizes = [3072, 340000, 20];
    });
    const t0 = performance.now();
    expect(left(loadModel(under)).message).toBe(
      `${under}: holds 43 weights but its architecture needs ${3072 * 340000 + 340000 + 340000 * 20 + 20}: the file is corrupt; save or train the model again`,
    );
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  it('refuses a file larger than it can read before reading it', () => {
    const big = join(dir, 'big.json');
    writeFileSync(big, '');
    truncateSync(big, 600 * 2 ** 20); // sparse: no disk used
    expect(left(loadModel(big)).message).toBe(
      `${big}: is 629145600 bytes, more than the 536870888 tapegrad reads from one file (a JavaScript string's limit): it is not a file tapegrad wrote, or is corrupt`,
    );
  });

  it('a missing file, a folder, and a file of another format are Lefts too', () => {
    expect(left(loadModel(join(dir, 'absent.json'))).message).toBe(`${join(dir, 'absent.json')}: no such file`);
    mkdirSync(join(dir, 'folder.json'));
    expect(E.isLeft(loadModel(join(dir, 'folder.json')))).toBe(true);
    writeFileSync(join(dir, 'other.json'), '{"format":"other"}');
    expect(left(loadModel(join(dir, 'other.json'))).message).toMatch(/is not a tapegrad model \(format "other"\)/);
  });
});
