/**
 * jax-js (npm `@jax-js/jax`, a bench-only dev dependency) on its wasm device in
 * Node: the rows bench/jit.ts sets beside tapegrad's jit (issue #22).
 *
 * - `jaxDispatch`: the dispatch row's 5-op function, sum(tanh(v·v + exp(v))) of
 *   a 16-element float32 vector, and its valueAndGrad, each under jax-js `jit`;
 *   microseconds per op, with the op counts the caller gives (tapegrad's), so
 *   the per-op numbers compare call for call.
 * - `jaxMlpStep`: the headline MLP's training step (3072→128→20 ReLU, batch
 *   128, softmax cross-entropy + λ·Σw² over the weights, momentum
 *   v' = γv + lr·g, p' = p − v' as tapegrad's momentumStep does it) as one
 *   jitted function of (params, velocities, x, labels) returning the new
 *   params, velocities and the loss; on random float32 data of CIFAR's shape.
 *
 * jax-js's memory model is reference counting by ownership: every call
 * consumes its array arguments, `a.ref` adds a reference, `dataSync()` reads
 * and consumes, `blockUntilReady` waits without consuming. Its arrays are lazy,
 * so every timed call is blocked on (read back, or waited for) before the next.
 *
 * jax-js's wasm device runs its kernels on Web Workers when `SharedArrayBuffer`
 * and a global `Worker` exist; Node 20 has no global `Worker`, so here it runs
 * on the main thread, one thread.
 */
import { blockUntilReady, defaultDevice, init, jit, nn, numpy as np, tree, valueAndGrad } from '@jax-js/jax';

/** Starts jax-js's wasm backend (as its README says: `init`, then `defaultDevice`); throws if it is not available. */
export const initJaxWasm = async (): Promise<void> => {
  const devices = await init('wasm');
  if (!devices.includes('wasm')) throw new Error(`jax-js: no wasm device in this runtime (init gave ${devices.join(', ') || 'none'})`);
  defaultDevice('wasm');
};

/** Microseconds per op of `g` (ops primitive applications per call, each call blocked on), over `n` calls after a warm-up. */
const perOp = (g: () => void, ops: number, n: number): number => {
  for (let i = 0; i < 500; i++) g();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) g();
  return ((performance.now() - t0) * 1000) / n / ops;
};

/**
 * The dispatch row on jax-js: `jit(f)` and `jit(valueAndGrad(f))` of `xs`
 * (16 float32), µs per op with 5 ops for f and `gradOps` for its valueAndGrad.
 * Each call's outputs are read back with `dataSync` (the wasm device runs
 * synchronously here, so this is the blocking wait plus a copy of 1 or 16 floats).
 */
export const jaxDispatch = (xs: Float32Array, gradOps: number, n = 4000): { jit: number; jitGrad: number } => {
  const x = np.array(xs);
  const f = (v: np.Array) => np.sum(np.tanh(v.ref.mul(v.ref).add(np.exp(v))));
  const jf = jit(f);
  const jg = jit(valueAndGrad(f));
  try {
    const one = np.array(new Float32Array(1));
    one.dataSync(); // the backend's first readback, out of the timing
    const jitUs = perOp(() => void jf(x.ref).dataSync(), 5, n);
    const jitGradUs = perOp(
      () => {
        const [value, grad] = jg(x.ref);
        value.dataSync();
        grad.dataSync();
      },
      gradOps,
      n,
    );
    if (x.refCount !== 1) throw new Error(`jax-js dispatch: the input holds ${x.refCount} references after the runs (1 expected)`);
    return { jit: jitUs, jitGrad: jitGradUs };
  } finally {
    jf.dispose();
    jg.dispose();
    x.dispose();
  }
};

type Params = { w1: np.Array; b1: np.Array; w2: np.Array; b2: np.Array };

/** A seeded uniform [0, 1) stream (mulberry32), for data and weights without jax-js's RNG. */
const uniform01 = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};

const filled = (n: number, f: () => number): Float32Array => Float32Array.from({ length: n }, f);

/**
 * Seconds per training step of the headline MLP on jax-js, `jit`ted whole
 * (forward, backward, the momentum update), at `batch` rows of `features`
 * random floats with labels in [0, classes): the mean over `steps` timed steps
 * after `warm` (compiling) ones, each blocked on (`blockUntilReady` on the new
 * params and velocities). Cycles through `distinct` batches (4). Also returns the
 * first and last step's loss, to show it trains.
 */
export const jaxMlpStep = async (
  opts: {
    batch?: number;
    features?: number;
    hidden?: number;
    classes?: number;
    lr?: number;
    momentum?: number;
    lambda?: number;
    steps?: number;
    warm?: number;
    distinct?: number;
  } = {},
): Promise<{ seconds: number; lossFirst: number; lossLast: number }> => {
  const { batch = 128, features = 3072, hidden = 128, classes = 20, lr = 0.001, momentum = 0.8, lambda = 0.01, steps = 20, warm = 2, distinct = 4 } = opts;
  const rand = uniform01(22);
  const glorot = (nIn: number, nOut: number) => {
    const limit = Math.sqrt(6 / (nIn + nOut));
    return np.array(filled(nIn * nOut, () => (2 * rand() - 1) * limit)).reshape([nIn, nOut]);
  };
  let params: Params = { w1: glorot(features, hidden), b1: np.zeros([hidden]), w2: glorot(hidden, classes), b2: np.zeros([classes]) };
  let vel: Params = { w1: np.zeros([features, hidden]), b1: np.zeros([hidden]), w2: np.zeros([hidden, classes]), b2: np.zeros([classes]) };
  const batches = Array.from({ length: distinct }, () => ({
    x: np.array(filled(batch * features, () => 2 * rand() - 1)).reshape([batch, features]),
    y: np.array(
      Int32Array.from({ length: batch }, () => Math.floor(rand() * classes)),
      { dtype: np.int32 },
    ),
  }));

  // Mean softmax cross-entropy plus λ·Σw² over the two weight matrices (biases
  // not penalised), as tapegrad's fit with l2 { mode: 'loss', includeBias: false }.
  const loss = (p: Params, x: np.Array, y: np.Array): np.Array => {
    const h = nn.relu(np.matmul(x, p.w1.ref).add(p.b1));
    const logits = np.matmul(h, p.w2.ref).add(p.b2);
    const ce = np.sum(nn.logSoftmax(logits).mul(nn.oneHot(y, classes))).mul(-1 / batch);
    return ce.add(
      np
        .sum(np.square(p.w1))
        .add(np.sum(np.square(p.w2)))
        .mul(lambda),
    );
  };
  const step = jit((p: Params, v: Params, x: np.Array, y: np.Array): [Params, Params, np.Array] => {
    const [l, g] = valueAndGrad(loss)(tree.ref(p), x, y);
    const keys = ['w1', 'b1', 'w2', 'b2'] as const;
    const v2 = Object.fromEntries(keys.map((k) => [k, v[k].mul(momentum).add(g[k].mul(lr))])) as Params;
    const p2 = Object.fromEntries(keys.map((k) => [k, p[k].sub(v2[k].ref)])) as Params;
    return [p2, v2, l];
  });

  const run = async (i: number): Promise<number | undefined> => {
    const b = batches[i % batches.length]!;
    const [p2, v2, l] = step(params, vel, b.x.ref, b.y.ref);
    params = p2;
    vel = v2;
    await blockUntilReady([params, vel]);
    return i === 0 || i === warm + steps - 1 ? (await l.data())[0] : void l.dispose();
  };
  try {
    let lossFirst = Number.NaN,
      lossLast = Number.NaN;
    for (let i = 0; i < warm; i++) lossFirst = (await run(i)) ?? lossFirst;
    const t0 = performance.now();
    for (let i = warm; i < warm + steps; i++) lossLast = (await run(i)) ?? lossLast;
    const seconds = (performance.now() - t0) / 1000 / steps;
    for (const b of batches)
      if (b.x.refCount !== 1 || b.y.refCount !== 1) throw new Error('jax-js MLP: a batch holds an unexpected number of references after the run');
    return { seconds, lossFirst, lossLast };
  } finally {
    step.dispose();
    tree.dispose([params, vel, batches]);
  }
};
