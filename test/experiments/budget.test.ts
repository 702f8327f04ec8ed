/**
 * Memory is checked before allocation: the estimate is the sum written out by
 * hand here, the refusal names the layer and a width that does fit, and --jobs
 * is capped by cores and memory.
 */
import * as E from 'fp-ts/lib/Either.js';
import { describe, expect, it } from 'vitest';
import { checkRunFits, CPU_KERNEL_BYTES, runBytes } from '../../src/experiments/budget.js';
import { decodeConfig, type ResolvedConfig } from '../../src/experiments/config.js';
import { capJobs } from '../../src/experiments/parallel.js';
import { left, right } from '../helpers.js';

const GiB = 2 ** 30;
const config = (hidden: number[], extra: object = {}): ResolvedConfig => right(decodeConfig({ name: 'b', model: { hidden }, ...extra }));

describe('the memory estimate', () => {
  it('is data plus, per layer, five copies of the weights under momentum and the activations', () => {
    const c = config([128], { data: { limitTrain: 1000, limitTest: 500 }, training: { batchSize: 100 } });
    const data = 1500 * 3072 * 4;
    const rows = 100 * 3 + 1000 * 2;
    const layer1 = (3073 * 128 * 5 + rows * 128) * 4;
    const layer2 = (129 * 20 * 5 + rows * 20) * 4;
    expect(runBytes(c, 20)).toBe(data + layer1 + layer2);
  });

  it("the report's models fit; a 200000-wide layer is refused naming it and a width that fits", () => {
    expect(E.isRight(checkRunFits(config([128]), 20, 'cpu', 16 * GiB))).toBe(true);
    expect(E.isRight(checkRunFits(config([1024, 512]), 100, 'cpu', 16 * GiB))).toBe(true);
    const big = config([200000]);
    const layerGiB = (((3073 * 200000 * 5 + (big.training.batchSize * 3 + 2000) * 200000) * 4) / GiB).toFixed(1);
    const m = left(checkRunFits(big, 20, 'cpu', 64 * GiB)).message;
    expect(m).toContain(`layer 1 (3072 → 200000) needs ${layerGiB} GiB to train`);
    expect(m).toMatch(
      /^model\.hidden\[0\]: layer 1 \(3072 → 200000\) needs [\d.]+ GiB to train.*more than the cpu backend's 2\.0 GiB of kernel memory: make that layer at most (\d+) wide$/,
    );
    const widest = Number(/at most (\d+) wide/.exec(m)![1]);
    expect(E.isRight(checkRunFits(config([widest]), 20, 'cpu', 64 * GiB))).toBe(true);
    expect(E.isLeft(checkRunFits(config([Math.ceil(widest * 1.1)]), 20, 'cpu', 64 * GiB))).toBe(true);
    expect(runBytes(config([widest]), 20)).toBeLessThanOrEqual(CPU_KERNEL_BYTES);
  });

  it('a huge batchSize is refused naming batchSize and the largest that fits, not a layer', () => {
    const c = config([4096, 4096], { training: { batchSize: 1e9 } });
    const m = left(checkRunFits(c, 20, 'cpu', 64 * GiB)).message;
    expect(m).toMatch(
      /^training\.batchSize 1000000000: one batch's activations need [\d.]+ GiB, and the run [\d.]+ GiB with its data, more than the cpu backend's 2\.0 GiB of kernel memory: use a batchSize of at most (\d+)$/,
    );
    const largest = Number(/at most (\d+)$/.exec(m)![1]);
    expect(largest).toBeGreaterThan(0);
    expect(E.isRight(checkRunFits(config([4096, 4096], { training: { batchSize: largest } }), 20, 'cpu', 64 * GiB))).toBe(true);
    expect(E.isLeft(checkRunFits(config([4096, 4096], { training: { batchSize: largest + 1 } }), 20, 'cpu', 64 * GiB))).toBe(true);
  });

  it('other backends are held to the machine, and the machine to 80% of its memory', () => {
    expect(E.isRight(checkRunFits(config([200000]), 20, 'reference', 64 * GiB))).toBe(true);
    expect(left(checkRunFits(config([200000]), 20, 'reference', 8 * GiB)).message).toMatch(/more than 80% of this machine's 8\.0 GiB/);
  });
});

describe('capJobs', () => {
  it('caps at the cores, then at the memory, saying which', () => {
    expect(capJobs(50, 0.8 * GiB, 2, 24 * GiB)).toEqual({ jobs: 2, note: '--jobs 50: running 2 side by side (this machine has 2 cores)' });
    expect(capJobs(8, 10 * GiB, 16, 32 * GiB)).toEqual({
      jobs: 2,
      note: '--jobs 8: running 2 side by side (this machine has memory for 2 runs of ~10.0 GiB in 80% of 32.0 GiB)',
    });
    expect(capJobs(2, 0.8 * GiB, 2, 24 * GiB)).toEqual({ jobs: 2 });
    expect(capJobs(4, 100 * GiB, 8, 16 * GiB).jobs).toBe(1);
  });
});
