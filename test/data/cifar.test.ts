/**
 * The reader and preprocessing against the genuine CIFAR-100 in
 * ../shared/data/cifar-100-binary and the dataset's published figures.
 */
import * as E from 'fp-ts/lib/Either.js';
import { mkdtempSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Key } from '../../src/core/index.js';
import {
  batchIndices,
  channelStats,
  locateDataDir,
  normalizeInto,
  parseCifar100,
  PIXELS,
  readCifar100,
  readLabelNames,
  RECORD_BYTES,
  trainValSplit,
  type CifarSplit,
} from '../../src/data/index.js';
import { left, right } from '../helpers.js';
import { CIFAR_DIR } from './location.js';

let train: CifarSplit;
let test: CifarSplit;
beforeAll(() => {
  train = right(readCifar100(CIFAR_DIR, 'train'));
  test = right(readCifar100(CIFAR_DIR, 'test'));
});

describe('the genuine files', () => {
  it('hold 50,000 training and 10,000 test records, balanced as published', () => {
    expect(train.n).toBe(50000);
    expect(test.n).toBe(10000);
    const count = (labels: Uint8Array, k: number) => {
      const c = new Array<number>(k).fill(0);
      for (const l of labels) c[l]!++;
      return c;
    };
    expect(new Set(count(train.fine, 100))).toEqual(new Set([500]));
    expect(new Set(count(test.fine, 100))).toEqual(new Set([100]));
    expect(new Set(count(train.coarse, 20))).toEqual(new Set([2500]));
    expect(new Set(count(test.coarse, 20))).toEqual(new Set([500]));
  });

  it('every coarse class holds exactly 5 fine classes', () => {
    const members = new Map<number, Set<number>>();
    for (let i = 0; i < train.n; i++) (members.get(train.coarse[i]!) ?? members.set(train.coarse[i]!, new Set()).get(train.coarse[i]!)!).add(train.fine[i]!);
    expect(members.size).toBe(20);
    for (const s of members.values()) expect(s.size).toBe(5);
    // …and each fine class belongs to one coarse class only.
    const owners = new Map<number, number>();
    for (let i = 0; i < train.n; i++) {
      const prev = owners.get(train.fine[i]!);
      if (prev !== undefined) expect(prev).toBe(train.coarse[i]);
      owners.set(train.fine[i]!, train.coarse[i]!);
    }
  });

  it('first ten fine labels and per-channel statistics match the published figures', () => {
    expect([...train.fine.subarray(0, 10)]).toEqual([19, 29, 0, 11, 1, 86, 90, 28, 23, 31]);
    const s = channelStats(train);
    const round4 = (xs: readonly number[]) => xs.map((v) => Number(v.toFixed(4)));
    expect(round4(s.mean)).toEqual([0.5071, 0.4865, 0.4409]);
    expect(round4(s.std)).toEqual([0.2673, 0.2564, 0.2762]);
  });

  it('label names: 20 coarse, 100 fine', () => {
    expect(right(readLabelNames(CIFAR_DIR, 'coarse'))).toHaveLength(20);
    expect(right(readLabelNames(CIFAR_DIR, 'fine'))[0]).toBe('apple');
  });
});

describe('normalization', () => {
  it('per-image z-scoring gives every image-channel mean 0 and std 1 within 1e-5', () => {
    const idx = Int32Array.from({ length: 2000 }, (_, i) => i * 25);
    const out = new Float32Array(idx.length * PIXELS);
    normalizeInto(train, idx, 'per-image', out);
    let worstMean = 0,
      worstStd = 0;
    for (let r = 0; r < idx.length; r++)
      for (let c = 0; c < 3; c++) {
        let s = 0,
          s2 = 0;
        const o = r * PIXELS + c * 1024;
        for (let p = 0; p < 1024; p++) {
          s += out[o + p]!;
          s2 += out[o + p]! ** 2;
        }
        const m = s / 1024;
        worstMean = Math.max(worstMean, Math.abs(m));
        worstStd = Math.max(worstStd, Math.abs(Math.sqrt(s2 / 1024 - m * m) - 1));
      }
    expect(worstMean).toBeLessThan(1e-5);
    expect(worstStd).toBeLessThan(1e-5);
  });

  it('a constant channel becomes zeros, not NaN', () => {
    const bytes = new Uint8Array(RECORD_BYTES * 50000);
    for (let i = 0; i < 50000; i++) bytes[i * RECORD_BYTES + 1] = i % 100;
    const flat = right(parseCifar100(bytes, 'train', 'synthetic'));
    const out = new Float32Array(PIXELS);
    normalizeInto(flat, [0], 'per-image', out);
    expect(out.every((v) => v === 0)).toBe(true);
  });
});

describe('split and batches', () => {
  it('40,000 / 10,000, disjoint, the same for a seed and different for another', () => {
    const a = trainValSplit(50000, new Key(1));
    expect(a.train.length).toBe(40000);
    expect(a.val.length).toBe(10000);
    const all = new Set([...a.train, ...a.val]);
    expect(all.size).toBe(50000);
    const b = trainValSplit(50000, new Key(1));
    expect(b.val).toEqual(a.val);
    const c = trainValSplit(50000, new Key(2));
    expect(c.val).not.toEqual(a.val);
  });

  it('stratified split keeps each class at 80/20', () => {
    const s = trainValSplit(50000, new Key(3), { stratifyBy: train.fine });
    const perClass = new Array<number>(100).fill(0);
    for (const i of s.val) perClass[train.fine[i]!]!++;
    expect(new Set(perClass)).toEqual(new Set([100]));
  });

  it('minibatches keep the last partial batch; seeded shuffles repeat', () => {
    const b = batchIndices(40000, 128);
    expect(b).toHaveLength(313);
    expect(b[312]!.length).toBe(64);
    expect([...b[0]!.subarray(0, 3)]).toEqual([0, 1, 2]);
    expect(batchIndices(1000, 100, new Key(5))[0]).toEqual(batchIndices(1000, 100, new Key(5))[0]);
  });
});

describe('clear errors for bad files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tapegrad-bad-'));
  const good = () => readFileSync(join(CIFAR_DIR, 'test.bin'));

  it('a missing file', () => {
    const e = left(readCifar100(dir, 'train'));
    expect(e.message).toMatch(/train\.bin: file not found.*--data/);
  });
  it('a truncated file names the offset and the fix', () => {
    writeFileSync(join(dir, 'test.bin'), good().subarray(0, RECORD_BYTES * 100 + 17));
    const e = left(readCifar100(dir, 'test'));
    expect(e.message).toMatch(/byte offset 307400.*not a whole number.*17 stray bytes.*Delete the file and download/);
  });
  it('a file of the wrong size', () => {
    writeFileSync(join(dir, 'test.bin'), good().subarray(0, RECORD_BYTES * 100));
    expect(left(readCifar100(dir, 'test')).message).toMatch(/holds 100 records; the official test.bin holds 10000/);
  });
  it('an out-of-range label byte', () => {
    const bytes = Buffer.from(good());
    bytes[RECORD_BYTES * 7 + 1] = 250;
    writeFileSync(join(dir, 'test.bin'), bytes);
    expect(left(readCifar100(dir, 'test')).message).toMatch(/byte offset 21519.*record 7 has fine label 250/);
  });
  it('a valid file reads fine', () => {
    copyFileSync(join(CIFAR_DIR, 'test.bin'), join(dir, 'test.bin'));
    expect(E.isRight(readCifar100(dir, 'test'))).toBe(true);
  });
});

describe('locating the data', () => {
  it('flag, then CIFAR100_DIR, then ./data/cifar-100-binary', () => {
    expect(locateDataDir('/x', { CIFAR100_DIR: '/y' })).toEqual({ dir: '/x', source: 'flag' });
    expect(locateDataDir(undefined, { CIFAR100_DIR: '/y' })).toEqual({ dir: '/y', source: 'env' });
    expect(locateDataDir(undefined, {}).source).toBe('default');
  });
});
