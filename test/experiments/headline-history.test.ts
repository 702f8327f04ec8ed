/**
 * The paper preset's arithmetic does not move: the headline configuration (and a
 * defaults-preset variant with loss-form L2) replayed on a CIFAR-100 slice give
 * the per-epoch history recorded by scripts/record-headline-fixture.ts with the
 * code before training became generic over models, equal to the bit.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { headlineVariants, replay } from '../../scripts/record-headline-fixture.js';
import { CIFAR_DIR } from '../data/location.js';

const fixture = JSON.parse(readFileSync('test/fixtures/headline-history.json', 'utf8')) as { runs: Record<string, unknown> };

describe('the headline history', () => {
  for (const v of headlineVariants()) {
    it(`${v.name}: every epoch's losses and accuracies equal the recorded ones to the bit`, async () => {
      const now = await replay(v.raw, CIFAR_DIR);
      expect(now).toEqual(fixture.runs[v.name]);
    });
  }
});
