/**
 * The paper preset's arithmetic does not move: the headline configuration (and a
 * defaults-preset variant with loss-form L2) replayed on a CIFAR-100 slice give
 * the per-epoch history recorded by scripts/record-headline-fixture.ts with the
 * code before training became generic over models, equal to the bit.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import { headlineVariants, replay } from '../../scripts/record-headline-fixture.js';
import { CIFAR_DIR } from '../data/location.js';

// Recorded on the WebAssembly GEMM: a native BLAS sums in another order (other
// bits), so these guards pin the path they were recorded on.
vi.stubEnv('TAPEGRAD_BLAS', 'none');

const fixture = JSON.parse(readFileSync('test/fixtures/headline-history.json', 'utf8')) as { runs: Record<string, unknown> };

describe('the headline history', () => {
  for (const v of headlineVariants()) {
    it(`${v.name}: every epoch's losses and accuracies equal the recorded ones to the bit`, async () => {
      const now = await replay(v.raw, CIFAR_DIR);
      expect(now).toEqual(fixture.runs[v.name]);
    });
  }
});
