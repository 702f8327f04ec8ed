/**
 * The memory pool behind large tensors (src/core/pool.ts): a collected tensor's
 * memory comes back zeroed for the next tensor of its size, and recycling never
 * changes a result: training with the garbage collector forced after every batch
 * (so arrays really are recycled) gives the history of training without recycling,
 * both for our pool and for the cpu backend's tensor memory (backends/arena.ts).
 */
import * as E from 'fp-ts/lib/Either.js';
import { describe, expect, it } from 'vitest';
import { createCpuBackend, Key, reclaimTensorMemory, setBackend } from '../../src/core/index.js';
import { allocData } from '../../src/core/tensor.js';
import { collectGarbage, poolStats } from '../../src/core/pool.js';
import { denseSet } from '../../src/data/index.js';
import { fit, fitAsync, mlp, type FitOptions } from '../../src/nn/index.js';

/** Collects garbage and lets the finalizers (which refill the pool) run. */
const collect = async () => {
  for (let i = 0; i < 3; i++) {
    collectGarbage();
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('memory pool', () => {
  it('gives a collected array back, zeroed, to the next array of its size', async () => {
    setBackend('reference'); // a backend without memory of its own: our pool serves
    const n = 300_001;
    const fill = () => { (allocData('float32', n) as Float32Array).fill(7); };
    fill();
    await collect();
    const before = poolStats().reused;
    const again = allocData('float32', n);
    expect(poolStats().reused).toBe(before + 1);
    expect(again.every((v) => v === 0)).toBe(true);
    // Small arrays are left to the engine.
    const small = poolStats();
    allocData('float32', 100);
    expect(poolStats().fresh).toBe(small.fresh);
  });

  it('reclaimTensorMemory gives a dropped array\'s kernel memory back before it returns', async () => {
    const be = createCpuBackend({ threads: 1 });
    const base = be.memoryStats().tensorBytes;
    const make = () => { const x = be.allocFloat32!(2 ** 21, false)!; x.fill(1); return x.length; }; // 8 MiB, dropped on return
    expect(make()).toBe(2 ** 21);
    expect(be.memoryStats().tensorBytes).toBe(base + 8 * 2 ** 20);
    await reclaimTensorMemory();
    expect(be.memoryStats().tensorBytes).toBe(base);
    be.dispose?.();
  });

  it("a batch viewing a data set's rows keeps them alive after the set is gone", async () => {
    setBackend('cpu');
    const rows = 64, cols = 4096;
    const make = () => {
      const x = allocData('float32', rows * cols) as Float32Array;
      for (let i = 0; i < x.length; i++) x[i] = i % 97;
      return denseSet(x, new Uint8Array(rows), cols, 2);
    };
    let set: ReturnType<typeof make> | undefined = make();
    const batch = set.gather([8, 9, 10, 11]);
    const before = batch.toTypedArray();
    expect(before[0]).toBe((8 * cols) % 97);
    set = undefined;
    await collect();
    // Reuse every free block of the matrix's size: a recycled matrix would overwrite the batch.
    const fill = Array.from({ length: 4 }, () => (allocData('float32', rows * cols) as Float32Array).fill(-1));
    expect(batch.toTypedArray()).toEqual(before);
    expect(fill).toHaveLength(4);
  });

  it.each(['reference', 'cpu'])('recycling does not change training on %s: fitAsync with forced collection equals fit', async (name) => {
    const be = setBackend(name);
    // The cpu backend keeps tensors in its WebAssembly memory (backends/arena.ts); others use our pool.
    const recycledSoFar = () => (name === 'cpu' ? (be as ReturnType<typeof createCpuBackend>).memoryStats().recycled : poolStats().reused);
    // Wide enough that the weights (256×128 floats) and batches are pooled arrays.
    const key = new Key(5);
    const x = key.normal([512, 256], 'float32').toTypedArray() as Float32Array;
    const y = Uint8Array.from({ length: 512 }, (_, i) => (i * 7) % 10);
    const data = { train: denseSet(x.slice(0, 384 * 256), y.slice(0, 384), 256, 10), val: denseSet(x.slice(384 * 256), y.slice(384), 256, 10) };
    const model = mlp([256, 128, 10], { activation: 'relu', init: 'he-uniform' });
    const init = model.layer.init(new Key(1));
    const opts: FitOptions = { epochs: 3, batchSize: 128, optimizer: { kind: 'momentum', lr: 0.05, momentum: 0.9 }, shuffle: true, seed: 2, l2: { lambda: 0.01, mode: 'gradient', includeBias: true } };
    const plain = fit(model, init, data, opts);
    const reusedBefore = recycledSoFar();
    const recycled = await fitAsync(model, init, data, { ...opts, onEvent: (e) => { if (e.type === 'batch') collectGarbage(); } });
    expect(recycledSoFar()).toBeGreaterThan(reusedBefore);
    if (E.isLeft(plain) || E.isLeft(recycled)) throw new Error('training failed');
    const strip = (h: typeof plain.right.history) => h.map(({ seconds: _s, ...r }) => r);
    expect(strip(recycled.right.history)).toEqual(strip(plain.right.history));
    expect(recycled.right.params[0]!.w.toTypedArray()).toEqual(plain.right.params[0]!.w.toTypedArray());
  });
});
