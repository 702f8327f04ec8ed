/**
 * Crops and flips: exact pixels for known draws, draws that replay from the
 * key, and `fit` with augmentation: repeatable, resumable, and really changing
 * what is trained on. Config keys decode by name.
 */
import { describe, expect, it } from 'vitest';
import { Key, type Tensor } from '../../src/core/index.js';
import { leaves } from '../../src/autodiff/index.js';
import { augmentRows, denseSet, drawAugmentations } from '../../src/data/index.js';
import { decodeConfig } from '../../src/experiments/config.js';
import { fit, sequential, dense, type FitOptions } from '../../src/nn/index.js';
import { left, right } from '../helpers.js';

describe('augmentRows', () => {
  // Two channels of 3×4, pixel value = 100·c + 10·i + j (+1000 for the second image).
  const image = [2, 3, 4] as const;
  const x = Float32Array.from({ length: 2 * 24 }, (_, k) => {
    const r = Math.floor(k / 24),
      c = Math.floor((k % 24) / 12),
      i = Math.floor((k % 12) / 4),
      j = k % 4;
    return 1000 * r + 100 * c + 10 * i + j;
  });

  it('crops the zero-padded image at the drawn offset and mirrors it when drawn', () => {
    // crop 1: offsets 0…2; dy 0, dx 2: the window starts one row above the image and one column right of its left edge.
    const out = augmentRows(x, image, 1, [
      { dy: 0, dx: 2, flip: false },
      { dy: 1, dx: 1, flip: true },
    ]);
    expect(Array.from(out.subarray(0, 12))).toEqual([0, 0, 0, 0, 1, 2, 3, 0, 11, 12, 13, 0]);
    expect(Array.from(out.subarray(12, 24))).toEqual([0, 0, 0, 0, 101, 102, 103, 0, 111, 112, 113, 0]);
    // No shift, flipped: each row reversed.
    expect(Array.from(out.subarray(24, 36))).toEqual([1003, 1002, 1001, 1000, 1013, 1012, 1011, 1010, 1023, 1022, 1021, 1020]);
  });

  it('flip then shift: x[i + dy − crop, W − 1 − j + dx − crop]', () => {
    const out = augmentRows(x.subarray(0, 24), image, 2, [{ dy: 2, dx: 0, flip: true }]);
    // dx − crop = −2: column W − 1 − j − 2 = 1 − j: j = 0 → 1, j = 1 → 0, then outside.
    expect(Array.from(out.subarray(0, 12))).toEqual([1, 0, 0, 0, 11, 10, 0, 0, 21, 20, 0, 0]);
  });

  it('draws offsets in [0, 2·crop], flips about half the time, and replays from the key', () => {
    const d = drawAugmentations(new Key(5), 2000, { crop: 4, flip: true });
    expect(d).toEqual(drawAugmentations(new Key(5), 2000, { crop: 4, flip: true }));
    expect(new Set(d.map((e) => e.dy))).toEqual(new Set([0, 1, 2, 3, 4, 5, 6, 7, 8]));
    const flips = d.filter((e) => e.flip).length;
    expect(flips).toBeGreaterThan(900);
    expect(flips).toBeLessThan(1100);
    expect(drawAugmentations(new Key(5), 10, { crop: 4 }).every((e) => !e.flip)).toBe(true);
  });
});

describe('fit with augmentation', () => {
  const n = 48,
    image = [3, 4, 4] as const;
  const xs = new Key(8).normal([n, 48]).toTypedArray() as Float32Array;
  const y = Uint8Array.from({ length: n }, (_, i) => i % 2);
  const data = { train: denseSet(xs, y, 48, 2), val: denseSet(xs.slice(0, 16 * 48), y.slice(0, 16), 48, 2) };
  const model = sequential(dense(48, 2));
  const init = model.init(new Key(1));
  const opts: FitOptions = {
    epochs: 3,
    batchSize: 16,
    optimizer: { kind: 'momentum', lr: 0.1, momentum: 0.9 },
    shuffle: true,
    seed: 4,
    augment: { crop: 1, flip: true, image },
  };
  const values = (p: unknown) => (leaves(p as never) as Tensor[]).map((t) => Array.from(t.toTypedArray()));

  it('repeats exactly, resumes to the uninterrupted run, and differs from training without it', () => {
    const a = right(fit(model, init, data, opts));
    expect(values(right(fit(model, init, data, opts)).params)).toEqual(values(a.params));
    const ctl = new AbortController();
    const part = right(
      fit(model, init, data, {
        ...opts,
        signal: ctl.signal,
        onEvent: (e) => {
          if (e.type === 'batch' && e.epoch === 2 && e.batch === 2) ctl.abort();
        },
      }),
    );
    expect(part.interrupted).toBe(true);
    expect(values(right(fit(model, init, data, { ...opts, resume: part.state })).params)).toEqual(values(a.params));
    const { augment: _a, ...plain } = opts;
    expect(values(right(fit(model, init, data, plain)).params)).not.toEqual(values(a.params));
  });

  it('refuses rows that are not images of the given shape, naming the fix', () => {
    expect(left(fit(model, init, data, { ...opts, augment: { crop: 1 } })).message).toMatch(/48 features are not images of \[3, 32, 32\]: set augment.image/);
  });

  it('configs take data.augment and reject unknown keys in it', () => {
    expect(right(decodeConfig({ name: 'x', data: { augment: { crop: 4, flip: true } } })).data.augment).toEqual({ crop: 4, flip: true });
    expect('augment' in right(decodeConfig({ name: 'x' })).data).toBe(false);
    expect(left(decodeConfig({ name: 'x', data: { augment: { crop: 4, mirror: true } } })).message).toMatch(/unknown key 'data\.augment\.mirror'/);
    expect(left(decodeConfig({ name: 'x', data: { augment: { crop: 2.5 } } })).message).toMatch(/data\.augment\.crop/);
  });
});
