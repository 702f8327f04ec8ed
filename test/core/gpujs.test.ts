/**
 * The gpujs backend's kernels against plain float64 loops written here (an
 * independent reference: coordinates unravelled one by one, no strides shared
 * with the backend), on the MLP step's shapes and odd ones. Needs headless-gl
 * and an X display (`xvfb-run -a npx vitest run test/core/gpujs.test.ts`);
 * without one it says why and skips, except in CI (CI=true), where it fails.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Operand } from '../../src/core/backend.js';
import { createGpujsBackend, type GpuBuffer } from '../../src/core/backends/gpujs.js';
import { detectGpu } from '../../src/core/backends/detect.js';
import type { Data, DType } from '../../src/core/primitives.js';
import { requireSystem } from '../system.js';

const gpuReport = detectGpu();
const run = requireSystem({ suite: 'gpujs kernel tests (test/core/gpujs.test.ts)', found: gpuReport.context, missing: gpuReport.summary });

type Shape = readonly number[];
const size = (s: Shape): number => s.reduce((p, d) => p * d, 1);

// --- independent float64 references --------------------------------------------

const unravel = (i: number, s: Shape): number[] => {
  const c = new Array<number>(s.length).fill(0);
  for (let d = s.length - 1; d >= 0; d--) {
    c[d] = i % s[d]!;
    i = Math.floor(i / s[d]!);
  }
  return c;
};
const ravel = (c: readonly number[], s: Shape): number => c.reduce((acc, x, d) => acc * s[d]! + x, 0);
const bshape = (a: Shape, b: Shape): number[] => {
  const r = Math.max(a.length, b.length);
  return Array.from({ length: r }, (_, i) => {
    const x = a[a.length - r + i] ?? 1,
      y = b[b.length - r + i] ?? 1;
    return x === 1 ? y : x;
  });
};
/** Index into `s` of output coordinates `c` under NumPy broadcasting. */
const bidx = (c: readonly number[], s: Shape): number =>
  ravel(
    s.map((d, i) => (d === 1 ? 0 : c[c.length - s.length + i]!)),
    s,
  );

const refMap = (out: Shape, ins: readonly { x: ArrayLike<number>; s: Shape }[], f: (...v: number[]) => number): Float64Array => {
  const r = new Float64Array(size(out));
  for (let i = 0; i < r.length; i++) {
    const c = unravel(i, out);
    r[i] = f(...ins.map(({ x, s }) => x[bidx(c, s)]!));
  }
  return r;
};
const refMatmul = (a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number, ta: boolean, tb: boolean): Float64Array => {
  const A = (i: number, p: number) => (ta ? a[p * m + i]! : a[i * k + p]!);
  const B = (p: number, j: number) => (tb ? b[j * k + p]! : b[p * n + j]!);
  const r = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += A(i, p) * B(p, j);
      r[i * n + j] = s;
    }
  return r;
};
const keptOf = (s: Shape, axes: readonly number[]): number[] => s.map((d, i) => (axes.includes(i) ? 1 : d));
const refReduce = (x: ArrayLike<number>, s: Shape, axes: readonly number[], kind: 'sum' | 'max'): Float64Array => {
  const kept = keptOf(s, axes);
  const r = new Float64Array(size(kept)).fill(kind === 'sum' ? 0 : -Infinity);
  for (let i = 0; i < size(s); i++) {
    const o = ravel(
      unravel(i, s).map((c, d) => (axes.includes(d) ? 0 : c)),
      kept,
    );
    r[o] = kind === 'sum' ? r[o]! + x[i]! : Math.max(r[o]!, x[i]!);
  }
  return r;
};
const refMaxGrad = (x: ArrayLike<number>, s: Shape, axes: readonly number[], m: ArrayLike<number>, ct: ArrayLike<number>): Float64Array => {
  const kept = keptOf(s, axes);
  const o = (i: number) =>
    ravel(
      unravel(i, s).map((c, d) => (axes.includes(d) ? 0 : c)),
      kept,
    );
  const ties = new Float64Array(size(kept));
  for (let i = 0; i < size(s); i++) if (x[i] === m[o(i)]) ties[o(i)]!++;
  return Float64Array.from({ length: size(s) }, (_, i) => (x[i] === m[o(i)] ? ct[o(i)]! / ties[o(i)]! : 0));
};
const refTranspose = (x: ArrayLike<number>, s: Shape, perm: readonly number[]): Float64Array => {
  const out = perm.map((p) => s[p]!);
  return Float64Array.from({ length: size(s) }, (_, i) => {
    const c = unravel(i, out);
    const ci = new Array<number>(s.length);
    perm.forEach((p, d) => {
      ci[p] = c[d]!;
    });
    return x[ravel(ci, s)]!;
  });
};

// --- inputs and comparisons ------------------------------------------------------------

/** mulberry32: seeded, so a failure reproduces. */
const rng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
let seed = 1;
const rand = (n: number, lo = -1, hi = 1): Float32Array => {
  const r = rng(seed++);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
};
/** Small integers: plenty of ties for max. */
const ints = (n: number, k: number): Float32Array => {
  const r = rng(seed++);
  return Float32Array.from({ length: n }, () => Math.floor(r() * k));
};

const expectClose = (got: Data, want: ArrayLike<number>, rtol: number, atol: number, what: string) => {
  expect(got.length, `${what}: length`).toBe(want.length);
  let worst = -1,
    worstErr = 0;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i]! - want[i]!) - (atol + rtol * Math.abs(want[i]!));
    if (!(err <= 0) && (worst < 0 || err > worstErr)) [worst, worstErr] = [i, err];
  }
  expect(worst < 0 ? 'ok' : `element ${worst}: got ${got[worst]}, want ${want[worst]}`, what).toBe('ok');
};

describe.skipIf(!run)('gpujs backend kernels', () => {
  let be: ReturnType<typeof createGpujsBackend>;
  const made: GpuBuffer[] = [];
  let baseline = 0;
  const keep = (b: GpuBuffer): GpuBuffer => {
    made.push(b);
    return b;
  };
  const op = (data: Data, shape: Shape): Operand<GpuBuffer> => ({
    buf: keep(be.upload(data)),
    shape,
    dtype: data instanceof Float64Array ? 'float64' : 'float32',
  });
  const read = (b: GpuBuffer, dtype: DType = 'float32'): Data => be.read(keep(b), dtype, b.n);
  const f32 = { dtype: 'float32' as const };

  beforeAll(() => {
    be = createGpujsBackend();
    baseline = be.memory().liveBytes;
  });
  afterEach(() => {
    for (const b of made.splice(0)) be.free(b);
    // Every test frees what it made: the backend's memory is back where it started.
    expect(be.memory().liveBytes).toBe(baseline);
  });
  afterAll(() => be?.dispose());

  it('names its renderer and says when it is software', () => {
    expect(be.name).toBe('gpujs');
    expect(be.description).toContain(be.renderer);
    if (/llvmpipe|softpipe|swiftshader/i.test(be.renderer)) expect(be.description).toContain('(software rendering: slow)');
  });

  it('uploads and reads back exactly, including a 3072×128 tensor (1-D outputs past 2^16 elements)', () => {
    for (const n of [1, 7, 35, 393216]) {
      const x = rand(n, -100, 100);
      const back = read(be.upload(x));
      expect(back, 'a flat Float32Array').toBeInstanceOf(Float32Array);
      expect(Array.from(back), `n=${n}`).toEqual(Array.from(x));
    }
    expect(Array.from(read(be.full('float32', 393216, 0.1)).slice(-3))).toEqual(Array(3).fill(Math.fround(0.1)));
    expect(read(be.upload(new Float32Array(0))).length).toBe(0);
    const whole = rand(50);
    expect(Array.from(read(be.upload(whole.subarray(5, 40)))), 'a view uploads only its own elements').toEqual(Array.from(whole.subarray(5, 40)));
    const x64 = Float64Array.from([Math.PI, 1e-300, -2]);
    expect(Array.from(read(be.upload(x64), 'float64'))).toEqual(Array.from(x64));
  });

  const unaryCases: Array<[string, (x: number) => number, number, number]> = [
    ['neg', (x) => -x, -5, 5],
    ['reciprocal', (x) => 1 / x, 0.1, 5],
    ['exp', Math.exp, -10, 10],
    ['log', Math.log, 0.01, 100],
    ['sqrt', Math.sqrt, 0, 100],
    // Wide ranges: these must saturate, not overflow to NaN.
    ['tanh', Math.tanh, -60, 60],
    ['sigmoid', (x) => 1 / (1 + Math.exp(-x)), -100, 100],
    ['relu', (x) => Math.max(x, 0), -1, 1],
  ];
  for (const [name, f, lo, hi] of unaryCases) {
    it(`${name} on [128, 20], [7, 5], [1, 1], [2, 3, 4, 5]`, () => {
      for (const s of [
        [128, 20],
        [7, 5],
        [1, 1],
        [2, 3, 4, 5],
      ]) {
        const x = rand(size(s), lo, hi);
        const kernel = be.kernels[name as 'neg'];
        const got = read(kernel([op(x, s)], null, { shape: s, ...f32 }));
        expectClose(got, refMap(s, [{ x, s }], f), 4e-6, 1e-6, `${name} ${s}`);
      }
    });
  }

  it('select, every comparison and sign (the constants the transformations need) on the GPU, exactly', () => {
    const s = [7, 5];
    // Small integers: ties and zeros, where compare and sign differ most.
    const a = ints(35, 5).map((v) => v - 2),
      b = ints(35, 5).map((v) => v - 2),
      c = ints(35, 3).map((v) => v - 1);
    const pick = read(be.kernels.select([op(c, s), op(a, s), op(b, s)], null, { shape: s, ...f32 }));
    expect(Array.from(pick)).toEqual(Array.from(c, (v, i) => (v !== 0 ? a[i]! : b[i]!)));
    const ops = {
      greater: (x: number, y: number) => x > y,
      greaterEqual: (x: number, y: number) => x >= y,
      less: (x: number, y: number) => x < y,
      lessEqual: (x: number, y: number) => x <= y,
      equal: (x: number, y: number) => x === y,
      notEqual: (x: number, y: number) => x !== y,
    };
    for (const [name, holds] of Object.entries(ops)) {
      const got = read(be.kernels.compare([op(a, s), op(b, s)], { op: name as 'greater' }, { shape: s, ...f32 }));
      expect(Array.from(got), name).toEqual(Array.from(a, (v, i) => (holds(v, b[i]!) ? 1 : 0)));
    }
    expect(Array.from(read(be.kernels.sign([op(a, s)], null, { shape: s, ...f32 })))).toEqual(Array.from(a, (v) => Math.sign(v) + 0));
  });

  it('sin and cos (shaders), erf, round, argsort, gather and scatterAdd (host) match their definitions', () => {
    const x = rand(3 * 5, -4, 4),
      s = [3, 5];
    expectClose(read(be.kernels.sin([op(x, s)], null, { shape: s, ...f32 })), Array.from(x, Math.sin), 1e-5, 1e-6, 'sin');
    expectClose(read(be.kernels.cos([op(x, s)], null, { shape: s, ...f32 })), Array.from(x, Math.cos), 1e-5, 1e-6, 'cos');
    // erf: the Abramowitz–Stegun 7.1.26 form (|error| < 1.5e-7) is enough against float32.
    const erfAS = (v: number) => {
      const a = Math.abs(v),
        t = 1 / (1 + 0.3275911 * a);
      return Math.sign(v) * (1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-a * a));
    };
    expectClose(read(be.kernels.erf([op(x, s)], null, { shape: s, ...f32 })), Array.from(x, erfAS), 1e-6, 1e-6, 'erf');
    expect(Array.from(read(be.kernels.round([op(x, s)], { mode: 'floor' }, { shape: s, ...f32 })))).toEqual(Array.from(x, (v) => Math.floor(v)));
    const order = Array.from(read(be.kernels.argsort([op(x, s)], { axis: 1, descending: false }, { shape: s, ...f32 })));
    for (let r = 0; r < 3; r++) {
      const row = Array.from(x.subarray(5 * r, 5 * r + 5));
      expect(order.slice(5 * r, 5 * r + 5).map((j) => row[j]!)).toEqual([...row].sort((a, b) => a - b));
    }
    const idx = Float32Array.from([4, 0, 1, 1, 3, 2]),
      is = [3, 2];
    const g = read(be.kernels.gather([op(x, s), op(idx, is)], { axis: 1 }, { shape: is, ...f32 }));
    expect(Array.from(g)).toEqual(Array.from(idx, (j, o) => x[Math.floor(o / 2) * 5 + j]!));
    const src = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const sa = read(be.kernels.scatterAdd([op(x, s), op(idx, is), op(src, is)], { axis: 1 }, { shape: s, ...f32 }));
    const want = Array.from(x);
    idx.forEach((j, o) => {
      want[Math.floor(o / 2) * 5 + j]! += src[o]!;
    });
    expectClose(sa, want, 1e-6, 1e-6, 'scatterAdd');
  });

  it('argmax and maxPool2dSelect (run on the host, counted as transfers) match their definitions', () => {
    const x = rand(2 * 3 * 4 * 4),
      t = rand(2 * 3 * 4 * 4),
      s = [2, 3, 4, 4];
    const am = read(be.kernels.argmax([op(x, s)], { axis: 3 }, { shape: [2, 3, 4], ...f32 }));
    expect(Array.from(am)).toEqual(
      Array.from({ length: 24 }, (_, r) => {
        const row = Array.from(x.subarray(4 * r, 4 * r + 4));
        return row.indexOf(Math.max(...row));
      }),
    );
    const sel = read(be.kernels.maxPool2dSelect([op(x, s), op(t, s)], { size: 2, stride: 2 }, { shape: [2, 3, 2, 2], ...f32 }));
    const want = Array.from({ length: 24 }, (_, o) => {
      const plane = Math.floor(o / 4),
        i = Math.floor((o % 4) / 2),
        j = o % 2;
      const at = [0, 1, 4, 5].map((d) => plane * 16 + i * 8 + j * 2 + d);
      return t[at.reduce((best, k) => (x[k]! > x[best]! ? k : best), at[0]!)]!;
    });
    expect(Array.from(sel)).toEqual(want);
  });

  const binaryShapes: Array<[Shape, Shape]> = [
    [[128, 20], [20]], // bias
    [
      [128, 20],
      [128, 1],
    ], // column
    [
      [128, 20],
      [128, 20],
    ],
    [
      [1, 20],
      [128, 1],
    ], // both stretched
    [
      [1, 1],
      [1, 1],
    ],
    [[7, 5], [5]],
    [[], [7, 5]], // scalar
    [
      [2, 3, 4],
      [3, 1],
    ],
    [
      [2, 1, 4, 3],
      [5, 1, 3],
    ], // rank 4, both sides stretched
  ];
  const binaryCases: Array<[string, (a: number, b: number) => number]> = [
    ['add', (a, b) => a + b],
    ['mul', (a, b) => a * b],
    ['reluGrad', (x, ct) => (x > 0 ? ct : 0)],
  ];
  for (const [name, f] of binaryCases) {
    it(`${name} with NumPy broadcasting`, () => {
      for (const [sa, sb] of binaryShapes) {
        // reluGrad: integers in [-2, 2] put exact zeros in x (relu'(0) = 0).
        const a = name === 'reluGrad' ? ints(size(sa), 5).map((v) => v - 2) : rand(size(sa));
        const b = rand(size(sb));
        const out = bshape(sa, sb);
        const got = read(be.kernels[name as 'add']([op(a, sa), op(b, sb)], null, { shape: out, ...f32 }));
        expectClose(
          got,
          refMap(
            out,
            [
              { x: a, s: sa },
              { x: b, s: sb },
            ],
            f,
          ),
          1e-6,
          1e-7,
          `${name} ${JSON.stringify([sa, sb])}`,
        );
      }
    });
  }

  const mm: Array<[number, number, number]> = [
    [128, 3072, 128],
    [128, 128, 20],
    [1, 1, 1],
    [7, 5, 3],
    [3, 1, 4],
  ];
  for (const [m, k, n] of mm) {
    it(`matmul ${m}×${k} · ${k}×${n} in all four transpose forms, float32 within √k·2e-5`, () => {
      for (const transA of [false, true])
        for (const transB of [false, true]) {
          const a = rand(m * k),
            b = rand(k * n);
          const got = read(
            be.kernels.matmul([op(a, transA ? [k, m] : [m, k]), op(b, transB ? [n, k] : [k, n])], { transA, transB }, { shape: [m, n], ...f32 }),
          );
          const want = refMatmul(a, b, m, k, n, transA, transB);
          // float32 accumulation of k terms of size ≤ 1: error grows like √k · 2⁻²⁴.
          expectClose(got, want, 2e-5 * Math.sqrt(k) + 1e-6, 2e-5 * Math.sqrt(k) + 1e-6, `matmul ${m}×${k}×${n} ${transA} ${transB}`);
        }
    });
  }

  const reductions: Array<[Shape, number[]]> = [
    [[128, 20], [0]],
    [[128, 20], [1]],
    [
      [128, 20],
      [0, 1],
    ],
    [[128, 3072], [1]],
    [[128, 3072], [0]],
    [
      [1, 1],
      [0, 1],
    ],
    [[7, 5], [1]],
    [
      [2, 3, 4],
      [0, 2],
    ],
    [[2, 3, 4], [1]],
    [
      [2, 3, 4, 5],
      [1, 3],
    ],
    [
      [2, 3, 4, 5],
      [0, 1, 2, 3],
    ],
    [[3, 1, 4], [1]], // a reduced axis of length 1
  ];
  for (const kind of ['sum', 'max'] as const) {
    it(`${kind} over axes, keepDims both ways${kind === 'max' ? ', with ties' : ''}`, () => {
      for (const [s, axes] of reductions)
        for (const keepDims of [true, false]) {
          const x = kind === 'max' ? ints(size(s), 4) : rand(size(s));
          const outShape = keepDims ? keptOf(s, axes) : s.filter((_, d) => !axes.includes(d));
          const got = read(be.kernels[kind]([op(x, s)], { axes, keepDims }, { shape: outShape, ...f32 }));
          const r = axes.reduce((p, a) => p * s[a]!, 1);
          expectClose(got, refReduce(x, s, axes, kind), 2e-6 * Math.sqrt(r), 2e-6 * Math.sqrt(r), `${kind} ${s} ${axes} ${keepDims}`);
        }
    });
  }

  it('maxGrad shares ct equally among tied maxima', () => {
    for (const [s, axes] of reductions) {
      const x = ints(size(s), 3);
      const kept = keptOf(s, axes);
      const m = Float32Array.from(refReduce(x, s, axes, 'max'));
      const ct = rand(size(kept));
      const got = read(be.kernels.maxGrad([op(x, s), op(m, kept), op(ct, kept)], { axes }, { shape: s, ...f32 }));
      expectClose(got, refMaxGrad(x, s, axes, m, ct), 1e-6, 1e-7, `maxGrad ${s} ${axes}`);
    }
    // With ties the total still comes back: each slice's ct, split, sums to ct.
    const x = ints(128 * 20, 2);
    const m = Float32Array.from(refReduce(x, [128, 20], [1], 'max'));
    const ct = new Float32Array(128).fill(1);
    const g = read(be.kernels.maxGrad([op(x, [128, 20]), op(m, [128, 1]), op(ct, [128, 1])], { axes: [1] }, { shape: [128, 20], ...f32 }));
    expectClose(Float32Array.from(refReduce(g, [128, 20], [1], 'sum')), ct, 1e-6, 1e-6, 'maxGrad row sums');
  });

  it('transpose of rank 2, 3 and 4', () => {
    const cases: Array<[Shape, number[]]> = [
      [
        [128, 20],
        [1, 0],
      ],
      [
        [7, 5],
        [1, 0],
      ],
      [
        [1, 1],
        [1, 0],
      ],
      [
        [2, 3, 4],
        [2, 0, 1],
      ],
      [
        [2, 3, 4],
        [1, 0, 2],
      ],
      [
        [2, 3, 4],
        [0, 1, 2],
      ],
      [
        [2, 3, 4, 5],
        [3, 1, 0, 2],
      ],
      [
        [3072, 128],
        [1, 0],
      ],
    ];
    for (const [s, perm] of cases) {
      const x = rand(size(s));
      const got = read(be.kernels.transpose([op(x, s)], { perm }, { shape: perm.map((p) => s[p]!), ...f32 }));
      expectClose(got, refTranspose(x, s, perm), 0, 0, `transpose ${s} ${perm}`);
    }
  });

  it('broadcastTo', () => {
    const cases: Array<[Shape, Shape]> = [
      [[20], [128, 20]],
      [
        [128, 1],
        [128, 20],
      ],
      [
        [1, 1],
        [3, 4],
      ],
      [
        [3, 1, 5],
        [2, 3, 4, 5],
      ],
      [[], [7, 5]],
      [
        [7, 5],
        [7, 5],
      ],
    ];
    for (const [from, to] of cases) {
      const x = rand(size(from));
      const got = read(be.kernels.broadcastTo([op(x, from)], { shape: to }, { shape: to, ...f32 }));
      expectClose(
        got,
        refMap(to, [{ x, s: from }], (v) => v),
        0,
        0,
        `broadcastTo ${from} → ${to}`,
      );
    }
  });

  it('cast moves between float32 textures and float64 host buffers', () => {
    const x64 = Float64Array.from(rand(35, -1e3, 1e3), (v) => v + 1e-9);
    const to32 = be.kernels.cast([op(x64, [7, 5])], { dtype: 'float32' }, { shape: [7, 5], ...f32 });
    expect(to32.tex, 'float32 lives on the GPU').toBeDefined();
    expect(Array.from(read(to32))).toEqual(Array.from(Float32Array.from(x64)));
    const x32 = rand(35);
    const to64 = be.kernels.cast([op(x32, [7, 5])], { dtype: 'float64' }, { shape: [7, 5], dtype: 'float64' });
    expect(to64.host).toBeInstanceOf(Float64Array);
    expect(Array.from(read(to64, 'float64'))).toEqual(Array.from(x32));
    const same = be.kernels.cast([op(x32, [7, 5])], { dtype: 'float32' }, { shape: [7, 5], ...f32 });
    expect(Array.from(read(same))).toEqual(Array.from(x32));
  });

  it('float64 kernels run on the host in float64 (not rounded to float32)', () => {
    const f64 = { dtype: 'float64' as const };
    const a = Float64Array.from(rand(7 * 5), (v) => v + 1e-10),
      b = Float64Array.from(rand(5 * 3), (v) => v / 3);
    const mmOut = read(be.kernels.matmul([op(a, [7, 5]), op(b, [5, 3])], { transA: false, transB: false }, { shape: [7, 3], ...f64 }), 'float64');
    expect(mmOut).toBeInstanceOf(Float64Array);
    expectClose(mmOut, refMatmul(a, b, 7, 5, 3, false, false), 1e-14, 1e-15, 'matmul float64');
    const bias = Float64Array.from(rand(5));
    expectClose(
      read(be.kernels.add([op(a, [7, 5]), op(bias, [5])], null, { shape: [7, 5], ...f64 }), 'float64'),
      refMap(
        [7, 5],
        [
          { x: a, s: [7, 5] },
          { x: bias, s: [5] },
        ],
        (u, v) => u + v,
      ),
      0,
      0,
      'add float64',
    );
    expectClose(
      read(be.kernels.sum([op(a, [7, 5])], { axes: [0], keepDims: false }, { shape: [5], ...f64 }), 'float64'),
      refReduce(a, [7, 5], [0], 'sum'),
      1e-15,
      1e-15,
      'sum float64',
    );
    expectClose(read(be.kernels.tanh([op(a, [7, 5])], null, { shape: [7, 5], ...f64 }), 'float64'), Float64Array.from(a, Math.tanh), 0, 0, 'tanh float64');
    const t = Float64Array.from(ints(24, 3));
    const m = refReduce(t, [2, 3, 4], [0, 2], 'max');
    const ct = Float64Array.from(rand(3));
    expectClose(
      read(be.kernels.maxGrad([op(t, [2, 3, 4]), op(m, [1, 3, 1]), op(ct, [1, 3, 1])], { axes: [0, 2] }, { shape: [2, 3, 4], ...f64 }), 'float64'),
      refMaxGrad(t, [2, 3, 4], [0, 2], m, ct),
      1e-15,
      0,
      'maxGrad float64',
    );
    expectClose(
      read(be.kernels.transpose([op(t, [2, 3, 4])], { perm: [2, 0, 1] }, { shape: [4, 2, 3], ...f64 }), 'float64'),
      refTranspose(t, [2, 3, 4], [2, 0, 1]),
      0,
      0,
      'transpose float64',
    );
    // A float32 kernel refuses a float64 operand and names the fix.
    expect(() => be.kernels.exp([op(a, [7, 5])], null, { shape: [7, 5], ...f32 })).toThrow(/cast it to float32/);
  });

  const momentumRef = (p: ArrayLike<number>, v: ArrayLike<number>, g: ArrayLike<number>, hp: { lr: number; gamma: number; l2: number; nesterov: boolean }) => {
    const np = new Float64Array(p.length),
      nv = new Float64Array(p.length);
    for (let i = 0; i < p.length; i++) {
      const gi = g[i]! + hp.l2 * p[i]!;
      nv[i] = hp.gamma * v[i]! + hp.lr * gi;
      np[i] = p[i]! - (hp.nesterov ? hp.gamma * nv[i]! + hp.lr * gi : nv[i]!);
    }
    return [np, nv] as const;
  };
  it('fused momentum step, plain and Nesterov, float32 on the GPU and float64 on the host', () => {
    for (const nesterov of [false, true])
      for (const [s, lr] of [
        [[3072, 128], 0.01],
        [[20], 0.5],
        [[1, 1], 1],
      ] as const) {
        const hp = { lr, gamma: 0.9, l2: 5e-4, nesterov };
        const [p, v, g] = [rand(size(s)), rand(size(s), -0.1, 0.1), rand(size(s))];
        const [np, nv] = be.fused.momentumStep(op(p, s), op(v, s), op(g, s), hp);
        const [wp, wv] = momentumRef(p, v, g, hp);
        expectClose(read(np), wp, 1e-6, 1e-6, `p' ${s} nesterov=${nesterov}`);
        expectClose(read(nv), wv, 1e-6, 1e-6, `v' ${s} nesterov=${nesterov}`);
        const [p64, v64, g64] = [p, v, g].map((x) => Float64Array.from(x)) as [Float64Array, Float64Array, Float64Array];
        const [np64, nv64] = be.fused.momentumStep(op(p64, s), op(v64, s), op(g64, s), hp);
        expectClose(read(np64, 'float64'), wp, 0, 0, `p' float64 ${s}`);
        expectClose(read(nv64, 'float64'), wv, 0, 0, `v' float64 ${s}`);
      }
    // A new learning rate reuses the kernel (a uniform) and is honoured.
    const hp = { lr: 0.123, gamma: 0.5, l2: 0, nesterov: false };
    const [p, v, g] = [rand(20), rand(20), rand(20)];
    const [np, nv] = be.fused.momentumStep(op(p, [20]), op(v, [20]), op(g, [20]), hp);
    keep(nv);
    expectClose(read(np), momentumRef(p, v, g, hp)[0], 1e-6, 1e-6, 'momentum with another lr');
  });

  it('chained kernels stay on the GPU: ten ops with no read in between', () => {
    const [xs, bs] = [[128, 20], [20]];
    const x = rand(128 * 20),
      bias = rand(20),
      w = rand(20 * 20);
    const X = op(x, xs),
      B = op(bias, bs),
      W = op(w, [20, 20]);
    const f32o = (shape: Shape) => ({ shape, ...f32 });
    const step = (b: GpuBuffer, shape: Shape = xs): Operand<GpuBuffer> => ({ buf: keep(b), shape, dtype: 'float32' });
    let t = step(be.kernels.matmul([X, W], { transA: false, transB: false }, f32o(xs)));
    t = step(be.kernels.add([t, B], null, f32o(xs)));
    t = step(be.kernels.tanh([t], null, f32o(xs)));
    t = step(be.kernels.mul([t, X], null, f32o(xs)));
    t = step(be.kernels.exp([t], null, f32o(xs)));
    t = step(be.kernels.exp([t], null, f32o(xs))); // the same kernel fed its own output
    t = step(be.kernels.log([t], null, f32o(xs)));
    t = step(be.kernels.neg([t], null, f32o(xs)));
    t = step(be.kernels.relu([t], null, f32o(xs)));
    t = step(be.kernels.sum([t], { axes: [1], keepDims: true }, f32o([128, 1])), [128, 1]);
    const got = read(be.kernels.add([t, X], null, f32o(xs)));
    const xw = refMatmul(x, w, 128, 20, 20, false, false);
    const rowVals = refMap(
      xs,
      [
        { x: xw, s: xs },
        { x: bias, s: bs },
        { x, s: xs },
      ],
      (v, b, xi) => {
        const e = Math.exp(Math.exp(Math.tanh(v + b) * xi));
        return Math.max(-Math.log(e), 0);
      },
    );
    const want = refMap(
      xs,
      [
        { x: refReduce(rowVals, xs, [1], 'sum'), s: [128, 1] },
        { x, s: xs },
      ],
      (a, b) => a + b,
    );
    expectClose(got, want, 1e-5, 1e-5, 'chain');
  });

  it('free returns memory().liveBytes to its baseline; peak remembers', () => {
    const before = be.memory();
    const bufs = [be.upload(rand(393216)), be.full('float32', 2500, 1), be.upload(Float64Array.from([1, 2, 3]))];
    const during = be.memory();
    // A 393,216-element float32 texture is 627×628 RGBA float texels, 2,500 are 50×50; host float64 counts its bytes.
    expect(during.liveBytes - before.liveBytes).toBe(627 * 628 * 16 + 2500 * 16 + 24);
    expect(during.buffers - before.buffers).toBe(3);
    expect(during.peakBytes).toBeGreaterThanOrEqual(during.liveBytes);
    for (const b of bufs) be.free(b);
    expect(be.memory().liveBytes).toBe(before.liveBytes);
    expect(be.memory().buffers).toBe(before.buffers);
    expect(be.memory().peakBytes).toBe(during.peakBytes);
    expect(() => be.free(bufs[0]!)).toThrow(/freed twice/);
  });

  it('dispose releases textures and kernels, and a disposed backend refuses work', () => {
    const other = createGpujsBackend();
    const x = other.upload(rand(100));
    other.kernels.exp([{ buf: x, shape: [100], dtype: 'float32' }], null, { shape: [100], ...f32 });
    expect(other.memory().buffers).toBe(2);
    other.dispose();
    expect(other.memory().liveBytes).toBe(0);
    expect(other.memory().buffers).toBe(0);
    expect(() => other.full('float32', 3, 1)).toThrow(/disposed/);
  });
});
