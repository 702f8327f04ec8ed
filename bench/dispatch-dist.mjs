/**
 * Per-op overhead of the compiled package (dist/, what users import), eager
 * against jit, interleaved in one process (E J E J …, 7 rounds, the best of
 * each): a 5-op function of one element, sum(−(v·v + 3v)), whose arithmetic
 * costs nanoseconds, so µs/op is dispatch and replay alone. bench/jit.ts runs
 * the TypeScript through tsx, whose transform adds a cost to every function
 * made at run time; this is the same row without it.
 *
 *   npm run build && node bench/dispatch-dist.mjs
 */
import { add, createCpuBackend, jit, Key, mul, neg, sum, withBackend } from '../dist/index.js';

const be = createCpuBackend({ threads: 1 });
withBackend(be, () => {
  const x = new Key(0).normal([1]);
  const f = (v) => sum(neg(add(mul(v, v), mul(v, 3))));
  const jf = jit(f);
  const best = {};
  const time = (name, g, n = 40000) => {
    for (let i = 0; i < 1000; i++) g().dispose();
    const t0 = performance.now();
    for (let i = 0; i < n; i++) g().dispose();
    best[name] = Math.min(best[name] ?? Number.POSITIVE_INFINITY, ((performance.now() - t0) * 1000) / n / 5);
  };
  for (let r = 0; r < 7; r++) {
    time('eager', () => f(x));
    time('jit', () => jf(x));
  }
  console.log(`eager ${best.eager.toFixed(3)} µs/op, jit ${best.jit.toFixed(3)} µs/op, eager / jit ${(best.eager / best.jit).toFixed(1)}`);
});
be.dispose();
