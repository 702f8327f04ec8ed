/**
 * A disk that fills after a run's last checkpoint (while the model, plots and
 * result are written) leaves run.json saying `failed` with the reason, not
 * `running`. The full disk is a small tmpfs mounted here, which needs root
 * (.ci/run runs as root); without it the suite skips, except under CI=true.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeConfig } from '../../src/experiments/config.js';
import { runExperiment } from '../../src/experiments/run.js';
import { CIFAR_DIR } from '../data/location.js';
import { requireSystem } from '../system.js';
import { left, right } from '../helpers.js';

const mnt = mkdtempSync(join(tmpdir(), 'tapegrad-full-'));
const mounted = process.getuid?.() === 0 && spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt], { stdio: 'ignore' }).status === 0;
const ok = requireSystem({
  suite: 'disk-full tests (test/experiments/disk-full.test.ts)',
  found: mounted,
  missing: 'mounting a small tmpfs needs root: run the tests as root (as .ci/run does)',
});
beforeAll(() => {
  if (ok) mkdirSync(join(mnt, 'runs'));
});
afterAll(() => {
  if (mounted) spawnSync('umount', [mnt], { stdio: 'ignore' });
});

/** Writes zeros into `dir` until the file system refuses (ENOSPC). */
const fill = (dir: string): void => {
  const fd = openSync(join(dir, 'filler'), 'w');
  const block = Buffer.alloc(64 * 1024);
  try {
    for (;;) writeSync(fd, block);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    closeSync(fd);
  }
};

describe.skipIf(!ok)('a disk full after the last checkpoint', () => {
  it('leaves run.json failed, naming the full disk', async () => {
    const c = right(decodeConfig({ name: 'full', backend: 'cpu', model: { hidden: [8] }, training: { epochs: 1 }, data: { limitTrain: 300, limitTest: 50 } }));
    const dir = join(mnt, 'runs', 'full');
    const r = await runExperiment(c, {
      outDir: dir,
      dataDir: CIFAR_DIR,
      plots: false,
      onEvent: (e) => {
        if (e.type === 'epoch') fill(mnt);
      },
    });
    expect(left(r).message).toMatch(/the disk is full/);
    const run = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as { status: string; error: string };
    expect(run.status).toBe('failed');
    expect(run.error).toMatch(/the disk is full/);
  });
});
