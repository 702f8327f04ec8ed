/** Configs' `training.schedule` and `training.clipNorm`: decoded, checked by name, absent by default. */
import * as E from 'fp-ts/lib/Either.js';
import { describe, expect, it } from 'vitest';
import { decodeConfig } from '../../src/experiments/config.js';
import { left, right } from '../helpers.js';

describe('config schedule and clipNorm', () => {
  it('decodes every schedule kind and clipNorm, and leaves both out when unset (so older configs resolve as before)', () => {
    const c = right(decodeConfig({ name: 'x', training: { schedule: { kind: 'cosine', minLr: 0.0001, warmupEpochs: 2 }, clipNorm: 5 } }));
    expect(c.training.schedule).toEqual({ kind: 'cosine', minLr: 0.0001, warmupEpochs: 2 });
    expect(c.training.clipNorm).toBe(5);
    expect(right(decodeConfig({ name: 'x', training: { schedule: { kind: 'step', everyEpochs: 10, factor: 0.1 } } })).training.schedule).toEqual({
      kind: 'step',
      everyEpochs: 10,
      factor: 0.1,
    });
    const plain = right(decodeConfig({ name: 'x' }));
    expect('schedule' in plain.training || 'clipNorm' in plain.training).toBe(false);
  });

  it('names bad values and unknown keys', () => {
    expect(left(decodeConfig({ name: 'x', training: { clipNorm: -1 } })).message).toMatch(/training\.clipNorm.*positive number/);
    expect(left(decodeConfig({ name: 'x', training: { schedule: { kind: 'step', everyEpochs: 10 } } })).message).toMatch(/training\.schedule/);
    const r = decodeConfig({ name: 'x', training: { schedule: { kind: 'cosine', warmup: 2 } } });
    expect(E.isLeft(r) && r.left.message).toMatch(/unknown key 'training\.schedule\.warmup'/);
  });
});
