/**
 * The command line under a careful user's abuse (issue #14): every failure is
 * one line on stderr with the documented exit code (2 misuse, 1 failure, 130
 * interrupted) and no stack trace; nothing is overwritten; two runs racing for
 * one folder end as one run and one refusal; SIGTERM and SIGKILL leave run.json
 * telling the truth.
 */
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CIFAR_DIR } from '../data/location.js';

const CLI = ['--import', 'tsx', 'src/cli/main.ts'];
const env = { ...process.env, CIFAR100_DIR: CIFAR_DIR };
const cli = (...args: string[]) => spawnSync('node', [...CLI, ...args], { encoding: 'utf8', env });
const tmp = () => mkdtempSync(join(tmpdir(), 'tapegrad-rel-'));
const headline = ['--config', 'examples/configs/headline.yaml'];
const small = ['--limit-train', '600', '--limit-test', '100', '--epochs', '2', '--backend', 'cpu'];
const json = (f: string) => JSON.parse(readFileSync(f, 'utf8'));

/** The failure line: the last line of stderr, `tapegrad: …`; and no stack trace anywhere. */
const failure = (r: Pick<SpawnSyncReturns<string>, 'stderr'>): string => {
  expect(r.stderr).not.toMatch(/\n\s+at .+[:(]\d+:\d+\)?/);
  const lines = r.stderr.trim().split('\n');
  const last = lines[lines.length - 1]!;
  expect(last).toMatch(/^tapegrad: /);
  expect(lines.filter((l) => l.startsWith('tapegrad: '))).toHaveLength(1);
  return last;
};
const configFile = (text: string): string => {
  const f = join(tmp(), 'c.yaml');
  writeFileSync(f, text);
  return f;
};

describe('misuse: exit 2, one line naming the problem', () => {
  it('seeds outside 0..2^32-1 and non-integers', () => {
    for (const seed of ['4294967296', '1e300', '-1', '1.5']) {
      const r = cli('train', ...headline, '--seed', seed);
      expect(r.status).toBe(2);
      expect(failure(r)).toMatch(new RegExp(`--seed must be an integer from 0 to 4294967295, got '${seed.replace('.', '\\.')}'`));
    }
  });

  it('an empty config and a NaN learning rate', () => {
    const empty = cli('train', '--config', configFile(''));
    expect(empty.status).toBe(2);
    expect(failure(empty)).toMatch(/the config is empty: it needs at least 'name: …'/);
    const nan = cli('train', '--config', configFile('name: x\ntraining:\n  optimizer: {kind: momentum, lr: .nan, momentum: 0.8}\n'));
    expect(nan.status).toBe(2);
    expect(failure(nan)).toMatch(/c\.yaml: invalid config: training\.optimizer\.lr: expected a positive number, got NaN$/);
  });
});

describe('reproduce: flags it cannot honour are refused, and so are folders that are not reports', () => {
  it('--seed is misuse (exit 2); --out naming a file or a folder of other files is a failure (exit 1)', () => {
    const seed = cli('reproduce', '--only', 'table1', '--seed', '3');
    expect(seed.status).toBe(2);
    expect(failure(seed)).toMatch(/reproduce runs the report's configs with their own seeds: leave out --seed/);
    const root = tmp();
    writeFileSync(join(root, 'file'), 'x');
    const f = cli('reproduce', '--only', 'table1', '--out', join(root, 'file'));
    expect(f.status).toBe(1);
    expect(failure(f)).toBe(`tapegrad: ${join(root, 'file')} is a file, not a folder: choose another --out`);
    writeFileSync(join(root, 'notes.md'), 'mine');
    const d = cli('reproduce', '--only', 'table1', '--out', root);
    expect(d.status).toBe(1);
    expect(failure(d)).toMatch(/is not empty and is not a tapegrad report folder \(it holds (file, notes\.md|notes\.md, file)\)/);
    expect(readFileSync(join(root, 'notes.md'), 'utf8')).toBe('mine');
  });
});

describe('failures: exit 1, one line, nothing left behind or overwritten', () => {
  it('--out naming a file, or a folder of other files', () => {
    const root = tmp();
    writeFileSync(join(root, 'file'), 'x');
    const f = cli('train', ...headline, ...small, '--out', join(root, 'file'));
    expect(f.status).toBe(1);
    expect(failure(f)).toBe(`tapegrad: ${join(root, 'file')} is a file, not a folder: choose another --out`);
    mkdirSync(join(root, 'mine'));
    writeFileSync(join(root, 'mine', 'config.yaml'), 'my own');
    const d = cli('train', ...headline, ...small, '--out', join(root, 'mine'));
    expect(d.status).toBe(1);
    expect(failure(d)).toMatch(/mine is not empty and is not a tapegrad run folder \(it holds config\.yaml\)/);
    expect(readFileSync(join(root, 'mine', 'config.yaml'), 'utf8')).toBe('my own');
    expect(readdirSync(join(root, 'mine'))).toEqual(['config.yaml']);
  });

  it('a model too large for memory names the layer, in a moment, creating nothing', () => {
    const out = join(tmp(), 'big');
    const t0 = Date.now();
    const r = cli('train', '--config', configFile('name: big\nmodel:\n  hidden: [128, 200000]\n'), ...small, '--out', out);
    expect(r.status).toBe(1);
    expect(failure(r)).toMatch(
      /model\.hidden\[1\]: layer 2 \(128 → 200000\) needs .* GiB to train.*more than the cpu backend's 2\.0 GiB of kernel memory: make that layer at most \d+ wide/,
    );
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(existsSync(out)).toBe(false);
  });

  it('a run whose data cannot be read leaves no folder behind', () => {
    const data = tmp();
    for (const f of ['train.bin', 'test.bin']) writeFileSync(join(data, f), 'not cifar');
    for (const f of ['coarse_label_names.txt', 'fine_label_names.txt']) writeFileSync(join(data, f), readFileSync(join(CIFAR_DIR, f)));
    const out = join(tmp(), 'bad-data');
    const r = cli('train', ...headline, '--data', data, '--epochs', '1', '--backend', 'cpu', '--out', out);
    expect(r.status).toBe(1);
    expect(failure(r)).toMatch(/train\.bin \(byte offset 0\): size 9 bytes is not a whole number of 3074-byte records/);
    expect(existsSync(out)).toBe(false);
  });

  it('a missing label-names file says to download the data again, not to delete a file that is not there', () => {
    const data = tmp();
    for (const f of ['train.bin', 'test.bin']) symlinkSync(join(CIFAR_DIR, f), join(data, f));
    const r = cli('train', ...headline, ...small, '--data', data, '--out', join(tmp(), 'nolabels'));
    expect(r.status).toBe(1);
    expect(failure(r)).toBe(
      `tapegrad: ${join(data, 'coarse_label_names.txt')}: file not found. Download the dataset again (tapegrad download), or point --data at a complete copy.`,
    );
  });

  it('an empty validation set is refused with the sizes, creating nothing', () => {
    const out = join(tmp(), 'one');
    const r = cli('train', ...headline, '--limit-train', '1', '--epochs', '1', '--backend', 'cpu', '--out', out);
    expect(r.status).toBe(1);
    expect(failure(r)).toMatch(/the data split gives 1 training, 0 validation, 10000 test images .*validation and test need at least 10 images each/);
    expect(existsSync(out)).toBe(false);
  });

  it('the gpujs backend without a usable WebGL is one line, or works', () => {
    const r = cli('train', ...headline, '--limit-train', '600', '--limit-test', '100', '--epochs', '1', '--backend', 'gpujs', '--out', join(tmp(), 'gpu'));
    if (r.status !== 0) {
      expect(r.status).toBe(1);
      expect(failure(r)).toMatch(/backend 'gpujs' cannot be used here: .*\(try --backend cpu\)$/);
    }
  });

  it('--jobs beyond the machine is capped, with a note', () => {
    const r = cli('sweep', '--config', 'examples/configs/table7.yaml', ...small, '--jobs', '50', '--out', join(tmp(), 'sw'));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/note: --jobs 50: running [1-4] side by side \(this machine has/);
  });
});

describe('two runs racing for one --out', () => {
  it('end as one finished run and one refusal, the folder holding exactly the winner', async () => {
    const out = join(tmp(), 'race');
    const start = (seed: string) =>
      new Promise<{ code: number | null; stderr: string; seed: string }>((resolve) => {
        const child = spawn('node', [...CLI, 'train', ...headline, ...small, '--seed', seed, '--out', out], { env });
        let stderr = '';
        child.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
        });
        child.on('exit', (code) => resolve({ code, stderr, seed }));
      });
    const results = await Promise.all([start('1'), start('2')]);
    const won = results.filter((r) => r.code === 0);
    const lost = results.filter((r) => r.code !== 0);
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(lost[0]!.code).toBe(1);
    expect(failure(lost[0]!)).toMatch(/is in use by process \d+|holds (a finished|an unfinished) run/);
    const winner = Number(won[0]!.seed);
    expect(json(join(out, 'config.json')).seed).toBe(winner);
    expect(json(join(out, 'result.json')).seed).toBe(winner);
    expect(json(join(out, 'run.json'))).toMatchObject({ seed: winner, status: 'finished' });
    expect(json(join(out, 'history.json'))).toHaveLength(2);
    expect(existsSync(join(out, 'run.lock'))).toBe(false);
  });
});

describe('signals and resumes', () => {
  const long = [...headline, '--limit-train', '5000', '--limit-test', '100', '--epochs', '6', '--backend', 'cpu'];
  /** Starts a run and sends `signal` once epoch 2 has finished. */
  const killedAfterEpoch2 = (out: string, signal: NodeJS.Signals) =>
    new Promise<{ code: number | null; sig: NodeJS.Signals | null; stderr: string }>((resolve) => {
      const child = spawn('node', [...CLI, 'train', ...long, '--data', CIFAR_DIR, '--out', out], { env });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (/epoch 2\/6:/.test(stderr) && !child.killed) child.kill(signal);
      });
      child.on('exit', (code, sig) => resolve({ code, sig, stderr }));
    });

  it('SIGTERM stops after the batch, exit 130, run.json says interrupted, and the hint carries --data', async () => {
    const out = join(tmp(), 'term');
    const r = await killedAfterEpoch2(out, 'SIGTERM');
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(new RegExp(`continue with: tapegrad train --resume ${out} --data ${CIFAR_DIR}`));
    expect(json(join(out, 'run.json'))).toMatchObject({ status: 'interrupted', resume: `tapegrad train --resume ${out} --data ${CIFAR_DIR}` });
    expect(existsSync(join(out, 'run.lock'))).toBe(false);
    // A resumed run keeps its settings: a different seed is refused, not ignored.
    const seed = cli('train', '--resume', out, '--seed', '99');
    expect(seed.status).toBe(2);
    expect(failure(seed)).toBe(
      `tapegrad: --seed 99 would change the run in ${out} (it ran with 0): a resumed run keeps its settings; start a new run with --config to change them`,
    );
  });

  it('SIGKILL leaves a stale lock that the next command detects: run.json says killed, and the resume finishes', async () => {
    const out = join(tmp(), 'kill');
    const r = await killedAfterEpoch2(out, 'SIGKILL');
    expect(r.sig).toBe('SIGKILL');
    expect(json(join(out, 'run.json')).status).toBe('running');
    const again = cli('train', ...long, '--out', out);
    expect(again.status).toBe(1);
    expect(failure(again)).toBe(`tapegrad: ${out} holds an unfinished run: continue it with --resume ${out}, or choose another --out`);
    const resumed = cli('train', '--resume', out);
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/note: .*kill: its process \d+ ended without finishing \(killed\); run\.json now says so/);
    expect(json(join(out, 'run.json'))).toMatchObject({ status: 'finished' });
    expect(json(join(out, 'history.json')).map((h: { epoch: number }) => h.epoch)).toEqual([1, 2, 3, 4, 5, 6]);
    const status = cli('status', out);
    expect(status.status).toBe(0);
    expect(status.stdout).toBe(`${out}: finished after 6 epochs\n`);
    const none = cli('status', tmp());
    expect(none.status).toBe(1);
    expect(failure(none)).toMatch(/no run\.json: not a tapegrad run folder$/);
  });

  it('a sweep on two workers stopped by Ctrl-C twice: exit 130, every started run says interrupted, no lock left', async () => {
    const out = join(tmp(), 'sw');
    const child = spawn(
      'node',
      [
        ...CLI,
        'sweep',
        '--config',
        'examples/configs/table7.yaml',
        '--limit-train',
        '5000',
        '--limit-test',
        '100',
        '--epochs',
        '4',
        '--backend',
        'cpu',
        '--jobs',
        '2',
        '--out',
        out,
      ],
      { env },
    );
    let stderr = '';
    const code = await new Promise<number | null>((resolve) => {
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (/epoch 2\/4/.test(stderr) && !child.killed) {
          child.kill('SIGINT');
          setTimeout(() => child.kill('SIGINT'), 5);
        }
      });
      child.on('exit', (c) => resolve(c));
    });
    expect(code, stderr).toBe(130);
    const runs = readdirSync(out).filter((f) => f.startsWith('run-'));
    expect(runs.length).toBeGreaterThan(0);
    for (const r of runs) {
      expect(json(join(out, r, 'run.json')).status).toBe('interrupted');
      expect(existsSync(join(out, r, 'run.lock'))).toBe(false);
    }
    expect(existsSync(join(out, 'sweep.lock'))).toBe(false);
  });

  it('a truncated config.json is one line on resume', () => {
    const out = join(tmp(), 'trunc');
    mkdirSync(out);
    writeFileSync(join(out, 'config.json'), '{"name": "x", "see');
    const r = cli('train', '--resume', out);
    expect(r.status).toBe(1);
    expect(failure(r)).toMatch(/config\.json: is not valid JSON .*truncated or corrupt: this run folder cannot be continued; start the run again$/);
  });
});
