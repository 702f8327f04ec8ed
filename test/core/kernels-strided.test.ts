/**
 * The host kernels' broadcasting and reductions walk strided runs (forEachRun
 * in src/core/kernels.ts); checked here bit for bit against values recomputed
 * from coordinates, for batchNorm's channel pattern and other stretched axes.
 */
import { describe, expect, it } from 'vitest';
import { Key } from '../../src/core/index.js';
import { binary, broadcastTo, reduce, type Alloc } from '../../src/core/kernels.js';

const alloc: Alloc = (dtype, n) => (dtype === 'float64' ? new Float64Array(n) : new Float32Array(n));
const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
/** The flat index in `s` that coordinates `c` of a broadcast result read. */
const at = (s: readonly number[], c: readonly number[]): number => {
  const off = c.length - s.length;
  let i = 0;
  for (let ax = 0; ax < s.length; ax++) i = i * s[ax]! + (s[ax] === 1 ? 0 : c[ax + off]!);
  return i;
};
const coords = (s: readonly number[], flat: number): number[] => {
  const c = new Array<number>(s.length);
  for (let ax = s.length - 1; ax >= 0; ax--) {
    c[ax] = flat % s[ax]!;
    flat = Math.floor(flat / s[ax]!);
  }
  return c;
};
const draw = (key: Key, s: readonly number[]) => key.normal([size(s)]).toTypedArray() as Float32Array;

const pairs: Array<[number[], number[]]> = [
  [
    [4, 3, 5, 6],
    [1, 3, 1, 1],
  ],
  [
    [1, 3, 1, 1],
    [4, 3, 5, 6],
  ],
  [
    [2, 1, 4],
    [3, 1],
  ],
  [
    [5, 1],
    [1, 7],
  ],
  [
    [2, 3, 4],
    [2, 1, 4],
  ],
];

describe('strided host kernels', () => {
  it('add and mul with broadcasting equal the values recomputed from coordinates, bit for bit', () => {
    const key = new Key(50);
    for (const [as, bs] of pairs) {
      const a = draw(key.fold(`a${as}`), as),
        b = draw(key.fold(`b${bs}`), bs);
      for (const op of ['add', 'mul'] as const) {
        const { data, shape } = binary(alloc, op, a, as, b, bs);
        const want = new Float32Array(size(shape));
        for (let i = 0; i < want.length; i++) {
          const c = coords(shape, i),
            x = a[at(as, c)]!,
            y = b[at(bs, c)]!;
          want[i] = op === 'add' ? x + y : x * y;
        }
        expect(Buffer.from(data.buffer).equals(Buffer.from(want.buffer)), `${op} ${as} ${bs}`).toBe(true);
      }
    }
  });

  it('sums over axes in row order (float64 accumulation) and broadcastTo repeat the values recomputed from coordinates', () => {
    const s = [4, 3, 5, 6];
    const x = draw(new Key(51), s);
    for (const axes of [[0, 2, 3], [0, 2], [1, 3], [0]]) {
      const kept = s.map((d, i) => (axes.includes(i) ? 1 : d));
      const { data } = reduce(alloc, 'sum', x, s, axes, true);
      const acc = new Float64Array(size(kept));
      for (let i = 0; i < x.length; i++) acc[at(kept, coords(s, i))]! += x[i]!;
      expect(Buffer.from(data.buffer).equals(Buffer.from(Float32Array.from(acc).buffer)), `sum ${axes}`).toBe(true);
      const back = broadcastTo(alloc, data, kept, s);
      const want = Float32Array.from({ length: x.length }, (_, i) => data[at(kept, coords(s, i))]!);
      expect(Buffer.from(back.buffer).equals(Buffer.from(want.buffer)), `broadcastTo ${axes}`).toBe(true);
    }
  });
});
