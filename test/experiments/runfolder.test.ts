/**
 * Run folders: names stay one path segment, `--out` refuses files and other
 * people's folders, a folder is claimed by exactly one of several claimants, and
 * a lock whose process died is found stale and taken over (reported), never a
 * live one.
 */
import * as E from 'fp-ts/lib/Either.js';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  checkNewFolder,
  claimFreshFolder,
  claimNewFolder,
  fsMessage,
  liveHolder,
  lockFolder,
  RUN_LOCK,
  sanitizeName,
} from '../../src/experiments/runfolder.js';
import { runStatus } from '../../src/experiments/run.js';
import { sealJson } from '../../src/nn/index.js';
import { left, right } from '../helpers.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'tapegrad-folder-'));
/** The id of a process that has certainly exited. */
const deadPid = (): number => Number(spawnSync('node', ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);

describe('sanitizeName', () => {
  it('keeps a plain name and turns separators and leading dots into underscores', () => {
    expect(sanitizeName('table3-0.7-0.001')).toBe('table3-0.7-0.001');
    expect(sanitizeName('../../tmp/evil')).toBe('__.._tmp_evil');
    expect(sanitizeName('a/b\\c d\u0000e')).toBe('a_b_c_d_e');
    expect(sanitizeName('..')).toBe('run');
    expect(sanitizeName('')).toBe('run');
    expect(sanitizeName('x'.repeat(300))).toHaveLength(100);
  });

  it('a config name can never leave the runs folder', () => {
    const parent = join(tmp(), 'runs');
    for (const name of ['../../tmp/evil', '/etc/passwd', '..', '.hidden', 'a/../../b', '-rf']) {
      const lock = right(claimFreshFolder(parent, name));
      expect(dirname(lock.dir)).toBe(parent);
      expect(basename(lock.dir).startsWith('.')).toBe(false);
      expect(basename(lock.dir).startsWith('-')).toBe(false);
      lock.release();
    }
  });
});

describe('claiming a folder for a new run', () => {
  it('creates an absent folder and holds a lock naming this process until released', () => {
    const dir = join(tmp(), 'a', 'b');
    const lock = right(claimNewFolder(dir));
    const info = JSON.parse(readFileSync(join(dir, RUN_LOCK), 'utf8'));
    expect(info).toMatchObject({ pid: process.pid, host: hostname() });
    expect(liveHolder(dir)?.pid).toBe(process.pid);
    expect(left(claimNewFolder(dir)).message).toMatch(/is in use by process \d+ on .* wait for it to finish, or choose another folder/);
    lock.release();
    expect(existsSync(join(dir, RUN_LOCK))).toBe(false);
    // Free and empty again: claimable.
    right(claimNewFolder(dir)).release();
  });

  it('refuses a file, and a folder holding anything that is not ours, leaving it untouched', () => {
    const root = tmp();
    writeFileSync(join(root, 'file'), 'x');
    expect(left(claimNewFolder(join(root, 'file'))).message).toBe(`${join(root, 'file')} is a file, not a folder: choose another --out`);
    expect(left(checkNewFolder(join(root, 'file'))).message).toMatch(/is a file, not a folder/);
    const user = join(root, 'user');
    mkdirSync(user);
    writeFileSync(join(user, 'config.yaml'), 'mine');
    expect(left(claimNewFolder(user)).message).toMatch(/is not empty and is not a tapegrad run folder \(it holds config\.yaml\): choose a new or empty folder/);
    expect(readFileSync(join(user, 'config.yaml'), 'utf8')).toBe('mine');
    expect(readdirSync(user)).toEqual(['config.yaml']);
  });

  it('names a finished and an unfinished run for what they are', () => {
    const root = tmp();
    const done = join(root, 'done');
    mkdirSync(done);
    writeFileSync(join(done, 'result.json'), '{}');
    expect(left(claimNewFolder(done)).message).toMatch(/holds a finished run, which is never overwritten/);
    const half = join(root, 'half');
    mkdirSync(half);
    writeFileSync(join(half, 'checkpoint.json'), '{}');
    expect(left(claimNewFolder(half)).message).toBe(`${half} holds an unfinished run: continue it with --resume ${half}, or choose another --out`);
  });

  it('of many claims on one folder, exactly one wins', () => {
    const dir = join(tmp(), 'contested');
    const claims = Array.from({ length: 8 }, () => claimNewFolder(dir));
    expect(claims.filter(E.isRight)).toHaveLength(1);
    for (const c of claims) if (E.isLeft(c)) expect(c.left.message).toMatch(/in use by process/);
  });

  it('fresh folders for the same name started in the same second are distinct', () => {
    const parent = join(tmp(), 'runs');
    const locks = Array.from({ length: 5 }, () => right(claimFreshFolder(parent, 'same')));
    expect(new Set(locks.map((l) => l.dir)).size).toBe(5);
  });
});

describe('stale locks', () => {
  it('a lock left by a dead process is taken over and reported; a live one is not', () => {
    const dir = tmp();
    const pid = deadPid();
    expect(Number.isInteger(pid) && pid > 0).toBe(true);
    writeFileSync(join(dir, RUN_LOCK), JSON.stringify({ pid, host: hostname(), started: '2026-01-01T00:00:00.000Z' }));
    expect(liveHolder(dir)).toBeUndefined();
    const lock = right(lockFolder(dir));
    expect(lock.stale).toEqual({ pid, host: hostname(), started: '2026-01-01T00:00:00.000Z' });
    expect(JSON.parse(readFileSync(join(dir, RUN_LOCK), 'utf8')).pid).toBe(process.pid);
    expect(left(lockFolder(dir)).message).toMatch(new RegExp(`in use by process ${process.pid}`));
    lock.release();
  });

  it("taking a folder's lock removes the temporaries of writers killed mid-write, and only theirs", () => {
    const dir = tmp();
    const dead = deadPid();
    const mine = `.history.json.${process.pid}.tmp`,
      theirs = `.checkpoint.json.${dead}.tmp`,
      unrelated = 'notes.tmp';
    for (const f of [mine, theirs, unrelated, 'checkpoint.json']) writeFileSync(join(dir, f), 'x');
    const lock = right(lockFolder(dir));
    expect(readdirSync(dir).sort()).toEqual(['checkpoint.json', mine, unrelated, RUN_LOCK].sort());
    lock.release();
  });

  it('a lock from another host is never assumed stale', () => {
    const dir = tmp();
    writeFileSync(join(dir, RUN_LOCK), JSON.stringify({ pid: deadPid(), host: 'elsewhere.example', started: 'x' }));
    expect(left(lockFolder(dir)).message).toMatch(/in use by process \d+ on elsewhere\.example/);
  });
});

describe('runStatus', () => {
  it('a run.json left at running by a dead process is reported and recorded as killed; a live one as running', () => {
    const dir = tmp();
    const pid = deadPid();
    writeFileSync(join(dir, 'run.json'), JSON.stringify({ seed: 0, pid, status: 'running' }));
    writeFileSync(join(dir, RUN_LOCK), JSON.stringify({ pid, host: hostname(), started: 'then' }));
    writeFileSync(join(dir, 'checkpoint.json'), sealJson({ format: 'tapegrad.checkpoint', version: 2, epoch: 2 }));
    // history.json is plain JSON anyone can edit: the sealed checkpoint says how many epochs there are.
    writeFileSync(join(dir, 'history.json'), JSON.stringify([{ epoch: 1 }, { epoch: 2 }, { epoch: 3 }]));
    expect(right(runStatus(dir))).toEqual({
      status: 'killed',
      line: `${dir}: killed (its process ended without finishing) after 2 epochs; continue with: tapegrad train --resume ${dir}`,
    });
    expect(JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8'))).toMatchObject({ seed: 0, status: 'killed', killedProcess: pid });
    expect(existsSync(join(dir, RUN_LOCK))).toBe(false);

    const live = tmp();
    writeFileSync(join(live, 'run.json'), JSON.stringify({ status: 'running' }));
    const lock = right(lockFolder(live));
    expect(right(runStatus(live)).line).toMatch(new RegExp(`: running \\(process ${process.pid} on .*\\); 0 epochs finished$`));
    expect(JSON.parse(readFileSync(join(live, 'run.json'), 'utf8')).status).toBe('running');
    lock.release();
    expect(left(runStatus(tmp())).message).toMatch(/no run\.json: not a tapegrad run folder/);
  });

  it('verifies the sealed files instead of trusting edited ones', () => {
    const dir = tmp();
    writeFileSync(join(dir, 'run.json'), JSON.stringify({ status: 'interrupted' }));
    writeFileSync(join(dir, 'checkpoint.json'), sealJson({ format: 'tapegrad.checkpoint', version: 2, epoch: 2 }).replace('"epoch":2', '"epoch":9'));
    expect(left(runStatus(dir)).message).toBe(
      `${join(dir, 'checkpoint.json')}: fails its checksum: the file was changed or corrupted after it was written: resuming it is refused; start the run again`,
    );
    // run.json edited to say finished, with no result to show for it.
    writeFileSync(join(dir, 'run.json'), JSON.stringify({ status: 'finished' }));
    expect(left(runStatus(dir)).message).toBe(
      `${dir}: run.json says finished but the folder holds no result.json: it is damaged; continue it with tapegrad train --resume ${dir}`,
    );
    // A result.json that fails its checksum.
    writeFileSync(join(dir, 'result.json'), sealJson({ format: 'tapegrad.result', outcome: 'finished' }).replace('finished', 'finishe'));
    expect(left(runStatus(dir)).message).toMatch(new RegExp(`^${join(dir, 'result.json')}: fails its checksum`));
  });
});

describe('whileOpen', () => {
  it('runs its callback with the exit code when the process exits with a run open, and not once closed', () => {
    const dir = tmp();
    const script = (close: boolean) =>
      `import { whileOpen } from './src/experiments/runfolder.ts'; import { writeFileSync } from 'node:fs';` +
      `const close = whileOpen((code) => writeFileSync(${JSON.stringify(join(dir, String(close)))}, String(code)));` +
      `${close ? 'close();' : ''} setTimeout(() => process.exit(130), 10);`;
    for (const close of [false, true]) {
      const r = spawnSync('node', ['--import', 'tsx', '--input-type=module', '-e', script(close)], { encoding: 'utf8' });
      expect(r.status).toBe(130);
    }
    expect(readFileSync(join(dir, 'false'), 'utf8')).toBe('130');
    expect(existsSync(join(dir, 'true'))).toBe(false);
  });
});

describe('file-system errors', () => {
  it('read as one line naming the path and the fix', () => {
    const err = (code: string) => Object.assign(new Error(`${code}: something`), { code, path: '/data/x' });
    expect(fsMessage(err('EACCES'), 'fallback')).toBe('/data/x: permission denied: choose a folder you can write to, or fix its permissions');
    expect(fsMessage(err('ENOSPC'), 'fallback')).toBe('/data/x: the disk is full: free some space and run again');
    expect(fsMessage(Object.assign(new Error('no'), { code: 'ENOTDIR' }), 'out/run')).toBe('out/run: a part of this path is a file, not a folder');
  });
});
