import * as E from 'fp-ts/lib/Either.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as T from '../../src/core/index.js';
import { checked, fromArray, Key, tensor, type Tensor } from '../../src/core/index.js';
import { expectAllClose, left, right, t32, t64, tensorArb } from '../helpers.js';

describe('Tensor values', () => {
  it('builds from nested arrays and gives copies back', () => {
    const t = right(
      tensor([
        [1, 2, 3],
        [4, 5, 6],
      ]),
    );
    expect(t.shape).toEqual([2, 3]);
    expect(t.dtype).toBe('float32');
    expect(t.toArray()).toEqual([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    expect(t.get(1, 2)).toBe(6);
    const copy = t.toTypedArray();
    copy[0] = 99;
    expect(t.get(0, 0)).toBe(1);
    expect(Object.isFrozen(t.shape)).toBe(true);
  });

  it('copies what it is given', () => {
    const src = new Float64Array([1, 2, 3, 4]);
    const t = right(fromArray(src, [2, 2], 'float64'));
    src[0] = 42;
    expect(t.get(0, 0)).toBe(1);
  });

  it('rejects ragged arrays and mismatched sizes with a Left naming the shapes', () => {
    expect(left(tensor([[1, 2], [3]])).message).toMatch(/ragged.*\[2\].*\[1\]/);
    expect(left(fromArray([1, 2, 3], [2, 2])).message).toMatch(/3 values cannot fill shape \[2, 2\]/);
  });

  it('reshape infers -1 and refuses impossible shapes', () => {
    const t = T.reshape(T.zeros([2, 6]), [3, -1]);
    expect(t.shape).toEqual([3, 4]);
    expect(left(checked.reshape(t, [5, -1])).message).toMatch(/cannot reshape \[3, 4\]/);
  });

  it('transpose matches index arithmetic for rank 2 and 3', () => {
    const x = t64([...Array(24).keys()], [2, 3, 4]);
    const y = T.transpose(x, [2, 0, 1]);
    expect(y.shape).toEqual([4, 2, 3]);
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 4; k++) expect(y.get(k, i, j)).toBe(x.get(i, j, k));
    const m = t64([...Array(35 * 40).keys()], [35, 40]);
    const mt = T.transpose(m);
    expect(mt.get(39, 34)).toBe(m.get(34, 39));
    expect(mt.get(7, 3)).toBe(m.get(3, 7));
  });
});

describe('ops compute the right values (against hand-computed float64)', () => {
  it('bias add broadcasts a row over a batch; sums and means reduce the named axes', () => {
    const x = t64([1, 2, 3, 4, 5, 6], [2, 3]);
    const b = t64([10, 20, 30], [3]);
    expect(T.add(x, b).toArray()).toEqual([
      [11, 22, 33],
      [14, 25, 36],
    ]);
    expect(T.sum(x, 0).toArray()).toEqual([5, 7, 9]);
    expect(T.sum(x, 1, true).toArray()).toEqual([[6], [15]]);
    expect(T.mean(x).item()).toBeCloseTo(3.5, 12);
    expect(T.max(x, 1).toArray()).toEqual([3, 6]);
    expect(T.div(x, t64([2], [1])).toArray()).toEqual([
      [0.5, 1, 1.5],
      [2, 2.5, 3],
    ]);
  });

  it('softmax is stable for large logits and rows sum to 1', () => {
    const x = t64([1000, 1001, 1002, -1000, 0, 1000], [2, 3]);
    const s = T.softmax(x).toTypedArray();
    expect(s.every(Number.isFinite)).toBe(true);
    const e = [Math.exp(-2), Math.exp(-1), 1];
    const z = e[0]! + e[1]! + e[2]!;
    expectAllClose(
      s.slice(0, 3),
      e.map((v) => v / z),
      1e-15,
    );
    expectAllClose(T.sum(T.softmax(x), 1).toTypedArray(), [1, 1], 1e-12);
  });

  it('cross-entropy equals -log softmax at the label, averaged', () => {
    const logits = t64([2, 1, 0.1, 0.5, 2.5, -1], [2, 3]);
    const ce = T.softmaxCrossEntropy(logits, [0, 1]).item();
    const p0 = Math.exp(2) / (Math.exp(2) + Math.exp(1) + Math.exp(0.1));
    const p1 = Math.exp(2.5) / (Math.exp(0.5) + Math.exp(2.5) + Math.exp(-1));
    expect(ce).toBeCloseTo(-(Math.log(p0) + Math.log(p1)) / 2, 12);
  });

  it('matmul on the reference backend matches a float64 triple loop for every transpose form', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 6 }),
        fc.boolean(),
        fc.boolean(),
        fc.integer(),
        (m, k, n, ta, tb, seed) => {
          const [ka, kb] = new Key(seed).split(2);
          const a = ka!.uniform(ta ? [k, m] : [m, k], -1, 1, 'float64');
          const b = kb!.uniform(tb ? [n, k] : [k, n], -1, 1, 'float64');
          const c = T.matmul(a, b, { transA: ta, transB: tb });
          const want: number[] = [];
          for (let i = 0; i < m; i++)
            for (let j = 0; j < n; j++) {
              let s = 0;
              for (let p = 0; p < k; p++) s += (ta ? a.get(p, i) : a.get(i, p)) * (tb ? b.get(j, p) : b.get(p, j));
              want.push(s);
            }
          expectAllClose(c.toTypedArray(), want, 1e-12);
        },
      ),
      { numRuns: 50 },
    );
  });
});

describe('bad shapes give a Left with a readable message, never NaN-filled output', () => {
  it('matmul names both shapes', () => {
    const e = left(checked.matmul(T.zeros([2, 3]), T.zeros([4, 5])));
    expect(e).toBeInstanceOf(T.ShapeError);
    expect(e.message).toContain('[2, 3]');
    expect(e.message).toContain('[4, 5]');
    expect(left(checked.matmul(T.scalar(3), T.zeros([3, 1]))).message).toMatch(/a scalar has no matrix product/);
    expect(left(checked.matmul(T.zeros([3]), T.zeros([2, 1]))).message).toMatch(/inner lengths 3 and 2 differ/);
  });
  it('broadcasting failures name both shapes', () => {
    const e = left(checked.add(T.zeros([2, 3]), T.zeros([2])));
    expect(e.message).toMatch(/\[2, 3\] and \[2\] do not broadcast/);
  });
  it('labels and targets that do not fit the logits', () => {
    expect(left(checked.softmaxCrossEntropy(T.zeros([4, 3]), [0, 1])).message).toMatch(/2 labels for logits of shape \[4, 3\]/);
    expect(left(checked.oneHot([0, 7], 3)).message).toMatch(/label 7 at position 1/);
  });
  it("mixed dtypes promote to float64, and gradients come back in each input's dtype", async () => {
    const { grad } = await import('../../src/autodiff/index.js');
    const y = T.add(t32([1.5], [1]), t64([0.25], [1]));
    expect(y.dtype).toBe('float64');
    expect(y.item()).toBe(1.75);
    const g = grad((p: { a: Tensor; b: Tensor }) => T.sum(T.mul(p.a, p.b)))({ a: t32([3], [1]), b: t64([0.5], [1]) });
    expect(g.a.dtype).toBe('float32');
    expect(g.a.item()).toBe(0.5);
    expect(g.b.dtype).toBe('float64');
  });
  it('a Right for good shapes', () => {
    expect(E.isRight(checked.matmul(T.zeros([2, 3]), T.zeros([3, 5])))).toBe(true);
  });
});

describe('constructors refuse what is not numbers, and dtypes tapegrad does not have', () => {
  it('tensor(): a string, null or an object anywhere is a Left naming where (it used to overflow the stack)', () => {
    expect(left(tensor([1, 'x'] as never)).message).toBe('tensor(): expected a number, a boolean or a nested array of them at [1], found the string "x"');
    expect(left(tensor('abc' as never)).message).toBe('tensor(): expected a number, a boolean or a nested array of them, found the string "abc"');
    expect(
      left(
        tensor([
          [1, 2],
          [3, null],
        ] as never),
      ).message,
    ).toBe('tensor(): expected a number, a boolean or a nested array of them at [1][1], found null');
    expect(left(tensor([{}] as never)).message).toMatch(/at \[0\], found object/);
  });
  it('fromArray(): a non-number is a Left naming the element (it used to give NaNs)', () => {
    expect(left(fromArray(['a', 'b'] as never, [2])).message).toBe('fromArray(): element 0 is the string "a", not a number');
    expect(left(fromArray([1, undefined] as never, [2])).message).toBe('fromArray(): element 1 is undefined, not a number');
    expect(left(fromArray(undefined as never, [2])).message).toMatch(/values must be an array or a typed array of numbers, got undefined/);
    expect(right(fromArray(Float32Array.of(1, 2), [2])).toArray()).toEqual([1, 2]);
  });
  it('tensor(): nesting deeper than 64 (or an array containing itself) is a Left, not a stack overflow', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 20000; i++) deep = [deep];
    expect(left(tensor(deep as never)).message).toMatch(/^tensor\(\): arrays nested more than 64 deep/);
    const cyclic: unknown[] = [1];
    cyclic.push(cyclic);
    expect(left(tensor(cyclic as never)).message).toMatch(/^tensor\(\): (arrays nested more than 64 deep|ragged)/);
    const self: unknown[] = [];
    self.push(self);
    expect(left(tensor(self as never)).message).toMatch(/^tensor\(\): arrays nested more than 64 deep/);
    let ok: unknown = 2;
    for (let i = 0; i < 10; i++) ok = [ok];
    expect(right(tensor(ok as never)).shape).toEqual(new Array(10).fill(1));
  });
  it('ragged arrays are a Left wherever the raggedness is, and a Right never holds NaN from a non-number', () => {
    expect(left(tensor([[1, 2], 3] as never)).message).toMatch(/ragged nested array: element 0 has shape \[2\] but element 1 has shape \[\]/);
    expect(
      left(
        tensor([
          [[1], [2]],
          [[1], [2, 3]],
        ] as never),
      ).message,
    ).toMatch(/ragged/);
    expect(left(tensor([1n] as never)).message).toMatch(/at \[0\], found bigint/);
    expect(left(fromArray(BigInt64Array.of(1n) as never, [1])).message).toMatch(/^fromArray\(\): values must hold numbers, got a BigInt64Array/);
  });
  it('shapes and fill values that are not numbers throw one line naming them', () => {
    expect(() => T.zeros('ab' as never)).toThrow(/^invalid shape "ab": a shape is an array of non-negative integers/);
    expect(() => T.zeros([2.5])).toThrow(/^invalid shape \[2.5\]/);
    expect(() => T.full([2], 'x' as never)).toThrow(/^full\(\): the value must be a number, got the string "x"$/);
    expect(() => T.scalar(null as never)).toThrow(/^scalar\(\): the value must be a number, got null$/);
  });
  it('a dtype name tapegrad does not have is refused by name everywhere (int32 used to give a float tensor; now it is an int32 one)', () => {
    expect(() => T.zeros([2], 'int8' as never)).toThrow(/^zeros\(\): dtype 'int8' is not one of 'bool', 'int32', 'float32', 'float64'$/);
    expect(() => T.ones([2], 'uint8' as never)).toThrow(/^ones\(\): dtype 'uint8'/);
    expect(() => T.full([2], 3, 'float16' as never)).toThrow(/^full\(\): dtype 'float16'/);
    expect(left(tensor([1, 2], 'int8' as never)).message).toMatch(/^tensor\(\): dtype 'int8'/);
    expect(left(fromArray([1, 2], [2], 'uint8' as never)).message).toMatch(/^fromArray\(\): dtype 'uint8'/);
    expect(() => T.cast(T.zeros([2]), 'int64' as never)).toThrow(/^cast: dtype 'int64'/);
    expect(T.zeros([2], 'int32').dtype).toBe('int32');
    expect(T.ones([2], 'bool').toTypedArray()).toEqual(Uint8Array.of(1, 1));
  });
});

describe('options and index arguments from JavaScript are checked, not ignored', () => {
  it('conv2d names an option it does not have (dilation used to be ignored; now it is one)', () => {
    expect(() => T.conv2d(T.zeros([1, 1, 4, 4]), T.zeros([1, 1, 3, 3]), { dilations: 2 } as never)).toThrow(
      /^conv2d: unknown option 'dilations' \(it takes stride, padding, dilation, groups\)$/,
    );
    expect(() => T.conv2d(T.zeros([1, 2, 4, 4]), T.zeros([3, 1, 3, 3]), { groups: 2 })).toThrow(/out divisible by groups \(2\)/);
    expect(() => T.conv2d(T.zeros([1, 1, 4, 4]), T.zeros([1, 1, 3, 3]), { dilation: 2 })).toThrow(
      /^conv2d: filters \[1, 1, 3, 3\] dilated by 2 do not fit images \[1, 1, 4, 4\]/,
    );
  });
  it('take refuses a float tensor of indices (it returned shape [0, 3]) and takes an int32 one', () => {
    expect(() => T.take(T.zeros([4, 3]), T.zeros([2]) as never)).toThrow(/^take: indices in a tensor must be int32, got float32 \(cast\(indices, 'int32'\)\)$/);
    const x = right(fromArray([0, 1, 2, 3, 4, 5], [2, 3]));
    const got = T.take(x, right(tensor([[2, 0]], 'int32')), 1);
    expect(got.shape).toEqual([2, 1, 2]);
    expect(got.toArray()).toEqual([[[2, 0]], [[5, 3]]]);
  });
});

describe('immutability: no op changes its inputs', () => {
  const ops: Array<(a: Tensor, b: Tensor) => Tensor> = [
    T.add,
    T.sub,
    T.mul,
    T.div,
    (a) => T.exp(a),
    (a) => T.tanh(a),
    (a) => T.relu(a),
    (a) => T.sigmoid(a),
    (a) => T.log(T.exp(a)),
    (a) => T.softmax(a),
    (a) => T.sum(a, 0),
    (a) => T.max(a),
    (a) => T.transpose(a),
    (a) => T.reshape(a, [-1]),
    (a, b) => T.matmul(a, T.transpose(b)),
  ];
  it('holds for random ops on random tensors', () => {
    fc.assert(
      fc.property(tensorArb({ minRank: 2, maxRank: 2 }), fc.integer({ min: 0, max: ops.length - 1 }), (a, i) => {
        const b = T.mul(a, 0.5);
        const before = [a.toTypedArray(), b.toTypedArray()];
        ops[i]!(a, b);
        expect(a.toTypedArray()).toEqual(before[0]);
        expect(b.toTypedArray()).toEqual(before[1]);
      }),
      { numRuns: 100 },
    );
  });
});

describe('Key: seeded, repeatable randomness', () => {
  it('the same key gives the same draw; split keys differ', () => {
    const k = new Key(7);
    expect(k.uniform([5]).toTypedArray()).toEqual(k.uniform([5]).toTypedArray());
    const [a, b] = k.split(2);
    expect(a!.uniform([5]).toTypedArray()).not.toEqual(b!.uniform([5]).toTypedArray());
    const p = k.permutation(100);
    expect([...p].sort((x, y) => x - y)).toEqual([...Array(100).keys()]);
  });
  it('normal draws have mean 0 and std 1 (within sampling error)', () => {
    const x = Array.from(new Key(3).normal([20000], 'float64').toTypedArray());
    const m = x.reduce((s, v) => s + v, 0) / x.length;
    const sd = Math.sqrt(x.reduce((s, v) => s + (v - m) ** 2, 0) / x.length);
    expect(Math.abs(m)).toBeLessThan(0.03);
    expect(Math.abs(sd - 1)).toBeLessThan(0.03);
  });
});

describe('numpyUniform reproduces NumPy', () => {
  it('matches np.random.seed(42); np.random.uniform(0, 1, 3) (values printed by NumPy 2.4)', () => {
    const x = T.numpyUniform(42, [3], 0, 1, 'float64').toTypedArray();
    expect([...x]).toEqual([0.3745401188473625, 0.9507143064099162, 0.7319939418114051]);
  });
});
