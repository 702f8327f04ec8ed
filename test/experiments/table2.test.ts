/**
 * The report's Table 2 on a real CIFAR-100 minibatch: for an output bias, a hidden
 * bias, two hidden→output and two input→hidden weights of the 3072→128→20 tanh
 * network, numerical (ε = 0.01) and back-propagated gradients differ by < ε² = 1e-4.
 */
import { describe, expect, it, vi } from 'vitest';
import { readCifar100, sliceRows, cifarSet } from '../../src/data/index.js';
import { paperGradientCheck } from '../../src/experiments/gradcheck-table.js';
import { right } from '../helpers.js';
import { CIFAR_DIR } from '../data/location.js';

// Recorded on the WebAssembly GEMM: a native BLAS sums in another order (other
// bits), so these guards pin the path they were recorded on.
vi.stubEnv('TAPEGRAD_BLAS', 'none');

describe("the report's Table 2", () => {
  it('numerical and backprop gradients agree to O(ε²) on a real minibatch', () => {
    const train = right(readCifar100(CIFAR_DIR, 'train'));
    const batch = cifarSet(
      train,
      Int32Array.from({ length: 128 }, (_, i) => i),
      'coarse',
      'per-image',
    );
    const { x, y } = sliceRows(batch, 0, 128);
    const rows = paperGradientCheck(x, y, { seed: 1 });
    expect(rows.map((r) => r.weightType)).toEqual(['Output bias', 'Hidden bias', 'Hidden to output', 'Hidden to output', 'Input to hidden', 'Input to hidden']);
    for (const r of rows) {
      expect(r.absDiff).toBeLessThan(1e-4);
      expect(Math.abs(r.backprop)).toBeGreaterThan(0); // a real gradient, not a trivially zero one
    }
  });
});
