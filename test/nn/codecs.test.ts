/**
 * Decoding errors read as the user's config reads: dotted paths without io-ts'
 * member numbers, the expected kind of value in words, NaN and Infinity by
 * name, one line for any number of problems.
 */
import * as E from 'fp-ts/lib/Either.js';
import { describe, expect, it } from 'vitest';
import { decodeConfig } from '../../src/experiments/config.js';
import { MAX_SEED, showValue } from '../../src/nn/codecs.js';

const message = (v: unknown): string => {
  const d = decodeConfig(v, 'c.yaml');
  if (E.isRight(d)) throw new Error('expected the config to be refused');
  return d.left.message;
};

describe('describeErrors through decodeConfig', () => {
  it('names the key of a bad optimizer value, and NaN as NaN', () => {
    expect(message({ name: 'x', training: { optimizer: { kind: 'momentum', lr: NaN, momentum: 0.8 } } })).toBe(
      'c.yaml: invalid config: training.optimizer.lr: expected a positive number, got NaN',
    );
    expect(message({ name: 'x', training: { optimizer: { kind: 'sgd', lr: -Infinity } } })).toBe(
      'c.yaml: invalid config: training.optimizer.lr: expected a positive number, got -Infinity',
    );
  });

  it('an unknown optimizer kind names the kinds, not a kilobyte of io-ts type', () => {
    expect(message({ name: 'x', training: { optimizer: { kind: 'rmsprop', lr: 0.1 } } })).toBe(
      'c.yaml: invalid config: training.optimizer.kind: expected one of "sgd", "momentum", "adam", got "rmsprop"',
    );
  });

  it('list positions are written as indices; the member of a union the value was meant for speaks', () => {
    expect(message({ name: 'x', model: { hidden: [128, -1] } })).toBe('c.yaml: invalid config: model.hidden[1]: expected a positive integer, got -1');
    expect(message({ name: 'x', model: { hidden: 'wide' } })).toBe('c.yaml: invalid config: model.hidden: expected a positive integer or a list, got "wide"');
  });

  it('an empty config, a missing name and a list where a mapping belongs each get one short line', () => {
    expect(message(null)).toBe("c.yaml: the config is empty: it needs at least 'name: …' (see examples/configs/)");
    expect(message({})).toBe('c.yaml: invalid config: name: missing (expected a string without control characters (tabs, newlines, escapes))');
    expect(message([1, 2])).toBe('c.yaml: invalid config: (the whole value): expected a mapping (key: value), got [1,2]');
  });

  it('several problems stay on one line', () => {
    const m = message({ name: 'x', seed: -1, data: { trainFraction: 2 } });
    expect(m.split('\n')).toHaveLength(1);
    expect(m).toBe(
      'c.yaml: invalid config: seed: expected an integer from 0 to 4294967295, got -1; data.trainFraction: expected a number strictly between 0 and 1, got 2',
    );
  });
});

describe('seeds', () => {
  it('accepts exactly the integers 0..2^32-1, the seeds the generators tell apart', () => {
    for (const seed of [0, 1, 2 ** 31, MAX_SEED]) expect(E.isRight(decodeConfig({ name: 'x', seed }))).toBe(true);
    for (const seed of [-1, 2 ** 32, 1e300, 0.5, NaN, Infinity]) expect(message({ name: 'x', seed })).toMatch(/seed: expected an integer from 0 to 4294967295/);
  });
});

describe('showValue', () => {
  it('shows what JSON would hide and cuts what is long', () => {
    expect([showValue(NaN), showValue(Infinity), showValue(undefined), showValue('a'), showValue(null)]).toEqual(['NaN', 'Infinity', 'nothing', '"a"', 'null']);
    expect(showValue({ k: 'x'.repeat(100) })).toHaveLength(40);
  });
});
