/**
 * Deterministic memory: a tensor's buffer goes back to its backend when the last
 * tensor using it is disposed (by dispose or tidy), never by waiting for the
 * garbage collector; a training step returns a backend's live bytes to the same
 * baseline; and the library changes nothing in its host process (no V8 flags,
 * no forced collections).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { createCpuBackend, createReferenceBackend, dispose, keep, Key, matmul, relu, reshape, tidy, toBackend, type Backend } from '../../src/core/index.js';
import { createHostPool } from '../../src/core/pool.js';
import { denseSet } from '../../src/data/index.js';
import { fitAsync, mlp, type FitOptions } from '../../src/nn/index.js';
import { right } from '../helpers.js';

const live = (be: Backend) => be.memory().liveBytes;

describe('tensor lifetimes', () => {
  const be = createReferenceBackend();

  it('dispose frees a buffer once no tensor shares it, and a disposed tensor refuses use with a clear message', () => {
    const base = live(be);
    const a = new Key(0).normal([256, 256], 'float32', 0, 1, be); // 256 KiB
    expect(live(be)).toBe(base + 256 * 256 * 4);
    const view = reshape(a, [65536]); // shares a's buffer
    a.dispose();
    expect(live(be)).toBe(base + 256 * 256 * 4); // the view still holds it
    expect(() => a.toTypedArray()).toThrow(/used after it was disposed.*keep\(\)/);
    expect(view.toTypedArray()).toHaveLength(65536);
    view.dispose();
    view.dispose(); // idempotent
    expect(live(be)).toBe(base);
  });

  it('tidy frees everything made inside except what it returns and what keep() marks; nested tidies hand results outwards', () => {
    const x = new Key(1).normal([64, 300], 'float32', 0, 1, be);
    const base = live(be);
    let kept: ReturnType<typeof relu> | undefined;
    const out = tidy(() => {
      const h = relu(x);
      kept = keep(relu(h));
      const inner = tidy(() => matmul(relu(h), relu(h), { transB: true })); // [64, 64]; its intermediates go here
      return { y: inner };
    });
    expect(out.y.isDisposed).toBe(false);
    expect(kept!.isDisposed).toBe(false);
    expect(live(be)).toBe(base + 64 * 64 * 4 + 64 * 300 * 4);
    dispose([out, kept]);
    expect(live(be)).toBe(base);
    expect(x.isDisposed).toBe(false); // made outside: not tidy's to free
  });

  it('a throwing function frees its tensors, and a promise is refused', () => {
    const base = live(be);
    expect(() =>
      tidy(() => {
        relu(new Key(2).normal([100, 100], 'float32', 0, 1, be));
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(live(be)).toBe(base);
    expect(() => tidy(() => Promise.resolve(1))).toThrow(/synchronous/);
  });

  it('the safety net: a large tensor never disposed gives its buffer back once the collector takes it', async () => {
    // The test (not the library) asks V8 for collections, to see the net work.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const own = createReferenceBackend();
    (() => {
      new Key(9).normal([256, 256], 'float32', 0, 1, own);
    })();
    expect(live(own)).toBe(256 * 256 * 4);
    for (let i = 0; i < 20 && live(own) !== 0; i++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 0)); // finalizers run between tasks
    }
    expect(live(own)).toBe(0);
  });

  it('freed host buffers are reused for the next tensor of their size', () => {
    const t = new Key(3).normal([128, 256], 'float32', 0, 1, be);
    t.dispose();
    const before = be.memory().buffers;
    const u = relu(new Key(4).normal([128, 256], 'float32', 0, 1, be));
    expect(be.memory().buffers).toBe(before + 2);
    dispose(u);
    // The pool itself: a freed buffer comes back (the same memory, zeroed when asked) for the next array of its size.
    const pool = createHostPool();
    const a = pool.alloc('float32', 32768, false) as Float32Array; // 128 KiB: pooled
    a.fill(7);
    pool.free(a);
    const b = pool.alloc('float32', 32768, true);
    expect(b.buffer).toBe(a.buffer);
    expect(b.every((v) => v === 0)).toBe(true);
    expect(pool.stats()).toEqual({ fresh: 1, reused: 1, freeBytes: 0 });
    const small = pool.alloc('float32', 16, false); // below 64 KiB: left to the engine, never pooled
    pool.free(small);
    expect(pool.alloc('float32', 16, false).buffer).not.toBe(small.buffer);
    expect(pool.memory().liveBytes).toBe(32768 * 4 + 16 * 4);
  });
});

describe('a training loop frees its memory as it goes', () => {
  // Wide enough that the weights (256×128 floats) and batches sit in the cpu backend's kernel memory.
  const setup = (be: Backend) => {
    const key = new Key(5);
    const x = key.normal([512, 256], 'float32', 0, 1, be);
    const xs = x.toTypedArray() as Float32Array;
    const y = Uint8Array.from({ length: 512 }, (_, i) => (i * 7) % 10);
    x.dispose();
    const data = { train: denseSet(xs.slice(0, 384 * 256), y.slice(0, 384), 256, 10, be), val: denseSet(xs.slice(384 * 256), y.slice(384), 256, 10, be) };
    const model = mlp([256, 128, 10], { activation: 'relu', init: 'he-uniform' });
    const init = model.layer.init(new Key(1)).map((l) => ({ w: toBackend(l.w, be), b: toBackend(l.b, be) }));
    return { data, model, init };
  };
  const opts: FitOptions = {
    epochs: 4,
    batchSize: 128,
    optimizer: { kind: 'momentum', lr: 0.01, momentum: 0.9 },
    shuffle: true,
    seed: 2,
    l2: { lambda: 0.01, mode: 'gradient', includeBias: true },
  };

  it.each([
    ['reference', true, () => createReferenceBackend()],
    ['cpu', true, () => createCpuBackend({ threads: 2 })],
    ['cpu', false, () => createCpuBackend({ threads: 2 })],
  ] as const)("%s, jit %s: live bytes are the same after every step, and the run's end leaves only what it returns", async (_name, jit, make) => {
    const be = make();
    const { data, model, init } = setup(be);
    const base = live(be);
    const afterStep: number[][] = [];
    const r = right(
      await fitAsync(model, init, data, {
        ...opts,
        jit,
        onEvent: (e) => {
          if (e.type === 'start') expect(e.step.path).toBe(jit ? 'jit' : 'eager');
          if (e.type === 'start') afterStep.push([]);
          if (e.type === 'batch') {
            if (e.batch === 1) afterStep.push([]);
            afterStep[afterStep.length - 1]!.push(live(be));
          }
        },
      }),
    );
    const steps = afterStep.filter((s) => s.length > 0);
    expect(steps).toHaveLength(4);
    // Within an epoch: one parameter set and one optimizer state more than at its start, every step alike.
    for (const epoch of steps) for (const v of epoch) expect(v).toBe(epoch[0]);
    // Across epochs, while validation improves (the best weights are the epoch's
    // starting ones): the same from epoch 2 on; in epoch 1 the starting weights are
    // the caller's `init`, which the caller still holds, so one parameter set less.
    const params = 4 * (256 * 128 + 128 + 128 * 10 + 10);
    expect(r.history.every((h, i) => i === 0 || h.valLoss < r.history[i - 1]!.valLoss)).toBe(true);
    for (const epoch of steps.slice(1)) expect(epoch[0]).toBe(steps[1]![0]);
    expect(steps[0]![0]).toBe(steps[1]![0]! - params);
    // What is left: the result's parameters, state and best weights, nothing else.
    expect(live(be)).toBeLessThanOrEqual(base + 3 * params + params);
    dispose(r);
    data.train.dispose();
    data.val.dispose();
    dispose(init);
    expect(live(be)).toBe(0);
    be.dispose();
  });
});

describe('the library leaves its host process alone', () => {
  it('no V8 flag set and no collection forced anywhere in src/', () => {
    const files: string[] = [];
    const walk = (d: string) => {
      for (const f of readdirSync(d)) {
        const p = join(d, f);
        if (statSync(p).isDirectory()) walk(p);
        else files.push(p);
      }
    };
    walk('src');
    const offending = files.filter((f) => /setFlagsFromString|expose-gc|runInNewContext|global\.gc\b/.test(readFileSync(f, 'utf8')));
    expect(offending).toEqual([]);
    expect(files.length).toBeGreaterThan(30);
  });
});
