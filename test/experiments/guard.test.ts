/**
 * The paper preset stays the same to the bit: the headline configuration, and a
 * two-layer tanh network on the fine labels, trained on a slice with the cpu
 * backend, give exactly the per-epoch history and test numbers recorded in
 * test/fixtures/paper-guard.json (by scripts/record-paper-guard.ts; first before
 * the backends redesign, again when keys became Threefry-2x32, which moved the
 * train/validation split). A change in any kernel's arithmetic, the batch order,
 * the init, the split or the early-stopping bookkeeping shows up here.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import { guardRuns, rerun, type Recorded } from '../../scripts/record-paper-guard.js';
import { CIFAR_DIR } from '../data/location.js';

// Recorded on the WebAssembly GEMM (a native BLAS sums in another order): these runs use the
// paper preset, which runs there unless TAPEGRAD_BLAS chooses otherwise (run.ts, backendFor),
// so no pin here: the guard holds for `npm start` as a user runs it, native BLAS installed or not.
vi.stubEnv('TAPEGRAD_BLAS', undefined);

const fixture = JSON.parse(readFileSync('test/fixtures/paper-guard.json', 'utf8')) as Record<'headline' | 'twoLayerTanhFine', Recorded>;

describe('the paper preset, to the bit', () => {
  it.each(guardRuns)('%s: the recorded history and test numbers', async (name, file) => {
    expect(await rerun(file, CIFAR_DIR)).toEqual(fixture[name]);
  });
});
