/**
 * The matmul micro-benchmark of `npm run bench`, in its own process so that the
 * OpenBLAS it loads sees the environment the bench gives it (OPENBLAS_CORETYPE
 * is read when the library loads): tapegrad's cpu backend on the native BLAS
 * (1 and 2 BLAS threads) and on the WebAssembly GEMM, and numpy's own call, on
 * the training step's shapes. Prints one JSON line.
 *
 *   node --experimental-wasm-relaxed-simd --import tsx bench/matmul.ts
 */
import { execFileSync } from 'node:child_process';
import { createCpuBackend, Key, matmul, toBackend, type Backend } from '../src/core/index.js';

export const SHAPES: ReadonlyArray<readonly [string, number, number, number, boolean, boolean]> = [
  ['X·W1 (forward)', 128, 3072, 128, false, false],
  ['Xᵀ·Δ1 (dW1)', 3072, 128, 128, true, false],
  ['H·W2 (forward)', 128, 128, 20, false, false],
  ['Hᵀ·Δ2 (dW2)', 128, 128, 20, true, false],
  ['Δ2·W2ᵀ (dH)', 128, 20, 128, false, true],
  ['Xval·W1 (validation)', 1000, 3072, 128, false, false],
];
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)]!;
};

/** ms per product, median of 7; operands on the backend (the cpu backend's kernel memory), each result freed. */
const timeMatmul = (be: Backend, m: number, k: number, n: number, ta: boolean, tb: boolean): number => {
  const key = new Key(1);
  const a = toBackend(key.uniform(ta ? [k, m] : [m, k], -1, 1), be);
  const b = toBackend(key.fold('b').uniform(tb ? [n, k] : [k, n], -1, 1), be);
  const once = () => matmul(a, b, { transA: ta, transB: tb }).dispose();
  for (let i = 0; i < 5; i++) once();
  const samples: number[] = [];
  for (let r = 0; r < 7; r++) {
    const reps = Math.max(1, Math.round(2e8 / (2 * m * n * k)));
    const t = performance.now();
    for (let i = 0; i < reps; i++) once();
    samples.push((performance.now() - t) / reps);
  }
  a.dispose();
  b.dispose();
  return median(samples);
};
/** numpy's own call on the same shapes, in this process's environment. */
const numpyMatmul = (m: number, k: number, n: number, ta: boolean, tb: boolean): number | null => {
  const code = `import numpy as np,time,statistics as st
a=np.random.rand(*(${ta ? `(${k},${m})` : `(${m},${k})`})).astype(np.float32); b=np.random.rand(*(${tb ? `(${n},${k})` : `(${k},${n})`})).astype(np.float32)
f=lambda: (a${ta ? '.T' : ''})@(b${tb ? '.T' : ''})
[f() for _ in range(5)]
reps=max(1,round(2e8/(2*${m}*${n}*${k}))); s=[]
for _ in range(7):
  t=time.perf_counter(); [f() for _ in range(reps)]; s.append((time.perf_counter()-t)/reps*1000)
print(st.median(s))`;
  try {
    return Number(execFileSync('python3', ['-c', code], { encoding: 'utf8' }).trim());
  } catch {
    return null;
  }
};

const native1 = createCpuBackend({ blasThreads: 1 }),
  native2 = createCpuBackend({ blasThreads: 2 }),
  wasm = createCpuBackend({ blas: 'none' });
const rows = SHAPES.map(([name, m, k, n, ta, tb]) => ({
  name,
  m,
  k,
  n,
  transA: ta,
  transB: tb,
  numpyMs: numpyMatmul(m, k, n, ta, tb),
  native1Ms: native1.blas === undefined ? null : timeMatmul(native1, m, k, n, ta, tb),
  native2Ms: native2.blas === undefined ? null : timeMatmul(native2, m, k, n, ta, tb),
  wasmMs: timeMatmul(wasm, m, k, n, ta, tb),
}));
console.log(JSON.stringify({ native: native1.blas?.summary ?? native1.blasReason, wasm: wasm.description, rows }));
for (const be of [native1, native2, wasm]) be.dispose();
