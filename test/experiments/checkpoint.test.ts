/**
 * A checkpoint belongs to its run: two runs of the same architecture write
 * checkpoints of the same shapes, and only the run id and config checksum each
 * carries tell them apart, so `--resume` refuses another run's.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeConfig, type ResolvedConfig } from '../../src/experiments/config.js';
import { runExperiment } from '../../src/experiments/run.js';
import { CIFAR_DIR } from '../data/location.js';
import { left, right } from '../helpers.js';

const root = mkdtempSync(join(tmpdir(), 'tapegrad-checkpoint-'));
const config = (seed: number): ResolvedConfig =>
  right(decodeConfig({ name: `ck${seed}`, seed, backend: 'cpu', model: { hidden: [8] }, training: { epochs: 1 }, data: { limitTrain: 300, limitTest: 50 } }));
/** A finished one-epoch run whose result is then removed, so it can be resumed (as after a crash in its last moments). */
const unfinished = async (name: string, seed: number): Promise<string> => {
  const dir = join(root, name);
  right(await runExperiment(config(seed), { outDir: dir, dataDir: CIFAR_DIR, plots: false }));
  rmSync(join(dir, 'result.json'));
  return dir;
};

let a: string, b: string;
beforeAll(async () => {
  a = await unfinished('a', 1);
  b = await unfinished('b', 2);
});

describe('resuming a run folder', () => {
  it("writes the run's id and config checksum into its checkpoints", () => {
    const ck = JSON.parse(readFileSync(join(a, 'checkpoint.json'), 'utf8')) as { run?: { id: string; configSha256: string } };
    const cfg = JSON.parse(readFileSync(join(a, 'config.json'), 'utf8')) as { runId?: string };
    expect(ck.run?.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(ck.run?.id).toBe(cfg.runId);
    expect(ck.run?.configSha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it("refuses another run's checkpoint of the same architecture", async () => {
    const c = join(root, 'c');
    // b's folder, with a's checkpoint copied in.
    mkdirSync(c);
    for (const f of ['config.json', 'config.yaml', 'run.json', 'history.json']) copyFileSync(join(b, f), join(c, f));
    copyFileSync(join(a, 'checkpoint.json'), join(c, 'checkpoint.json'));
    const msg = left(await runExperiment(undefined, { dataDir: CIFAR_DIR, plots: false }, c)).message;
    expect(msg).toMatch(
      new RegExp(
        `^${join(c, 'checkpoint.json')}: belongs to run [0-9a-f-]{36}, not to ${c}'s run [0-9a-f-]{36}: it is another run's checkpoint: resume is refused`,
      ),
    );
  });

  it('resumes from its own checkpoint', async () => {
    const r = right(await runExperiment(undefined, { dataDir: CIFAR_DIR, plots: false }, b));
    expect(r.history).toHaveLength(1);
  });
});
