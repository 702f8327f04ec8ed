/**
 * Sweeps on a job queue (issue #16), against a real Redis started here: two
 * worker processes in separate working folders, sharing one sweep folder,
 * write the local sweep's table bit for bit; enqueueing again runs nothing
 * twice; a worker killed mid-run (SIGKILL) is replaced and a restarted Redis
 * loses nothing; jobs of another tapegrad or with a config the decoder refuses
 * are not run.
 *
 * redis-server must be installed (.ci/run installs it): without it the suite
 * skips with one line naming the package, except under CI=true, where it fails
 * (test/system.ts).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as E from 'fp-ts/lib/Either.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dataChecksum, QUEUE_NAME, parseQueueUrl, tapegradVersion, type JobData } from '../../src/experiments/queue.js';
import { CIFAR_DIR } from '../data/location.js';
import { requireSystem } from '../system.js';

const haveRedis = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
const ok = requireSystem({
  suite: 'queue tests (test/experiments/queue.test.ts)',
  found: haveRedis,
  missing: 'redis-server not found: apt-get install redis-server',
});

const REPO = resolve(import.meta.dirname, '../..');
const NODE_ARGS = ['--import', pathToFileURL(join(REPO, 'node_modules/tsx/dist/loader.mjs')).href, join(REPO, 'src/cli/main.ts')];
const env = { ...process.env, CIFAR100_DIR: CIFAR_DIR };
const tmp = () => mkdtempSync(join(tmpdir(), 'tapegrad-queue-'));

/** A tiny sweep: two runs of three short epochs (long enough to kill a worker in the middle of one). */
const SWEEP = `name: queue-test
preset: paper
backend: cpu
data: { limitTrain: 1500, limitTest: 100 }
model: { hidden: [192], activation: relu }
training:
  epochs: 3
  optimizer: { kind: momentum, lr: 0.001, momentum: 0.8 }
sweep:
  title: "queue test"
  grid:
    training.optimizer.lr: [0.001, 0.005]
`;

const freePort = () =>
  new Promise<number>((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => res(typeof a === 'object' && a !== null ? a.port : 0));
    });
  });

const started: ChildProcess[] = [];
afterAll(() => {
  for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** A redis-server on `port` keeping its files in `dir`; resolves once it accepts connections. */
const startRedis = (port: number, dir: string, extra: string[] = []) =>
  new Promise<ChildProcess>((res, rej) => {
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', dir, ...extra], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    started.push(child);
    let out = '';
    child.on('error', (e) =>
      rej(
        new Error(
          `redis-server could not be started (${e.message}): the queue tests need a real Redis; install it (apt-get install redis-server, as .ci/run does)`,
        ),
      ),
    );
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (/Ready to accept connections/.test(out)) res(child);
    });
    child.on('exit', (code) => rej(new Error(`redis-server exited (${code}) before it was ready: ${out.slice(-300)}`)));
  });
const stopRedis = (child: ChildProcess) =>
  new Promise<void>((res) => {
    child.once('exit', () => res());
    child.kill('SIGTERM');
  });

/** A long-lived CLI process (a worker) in its own working folder, its stderr gathered. */
interface Proc {
  readonly child: ChildProcess;
  err: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}
const startCli = (cwd: string, ...args: string[]): Proc => {
  mkdirSync(cwd, { recursive: true });
  const child = spawn('node', [...NODE_ARGS, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(child);
  const p: Proc = { child, err: '', exited: new Promise((res) => child.on('exit', (code, signal) => res({ code, signal }))) };
  child.stderr!.on('data', (d: Buffer) => {
    p.err += d.toString();
  });
  child.stdout!.on('data', (d: Buffer) => {
    p.err += d.toString();
  });
  return p;
};
const cli = (cwd: string, ...args: string[]) => {
  mkdirSync(cwd, { recursive: true });
  return spawnSync('node', [...NODE_ARGS, ...args], { cwd, env, encoding: 'utf8' });
};

const until = async (what: string, ok: () => boolean, ms = 120_000): Promise<void> => {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

/** Worker flags: a lost worker's job is taken over within a few seconds. */
const FAST = ['--lock-ms', '3000', '--stalled-ms', '1000'];
const trainedLines = (logs: string[]) =>
  logs
    .flatMap((l) => l.split('\n'))
    .filter((l) => /: trained: /.test(l))
    .map((l) => l.split(':')[0])
    .sort();

let root: string;
let config: string;
let local: { md: string; csv: string };

beforeAll(() => {
  if (!ok) return;
  root = tmp();
  config = join(root, 'sweep.yaml');
  writeFileSync(config, SWEEP);
  const r = cli(root, 'sweep', '--config', config, '--out', join(root, 'local'), '--jobs', '1');
  expect(r.status, r.stderr).toBe(0);
  local = { md: readFileSync(join(root, 'local', 'table.md'), 'utf8'), csv: readFileSync(join(root, 'local', 'table.csv'), 'utf8') };
});

describe.skipIf(!ok)('sweep --queue and tapegrad worker', () => {
  it('two workers in separate folders write the local table bit for bit; enqueueing again runs nothing twice', async () => {
    const dir = tmp();
    const port = await freePort();
    const redis = await startRedis(port, dir, ['--requirepass', 's3cret']);
    const url = `redis://:s3cret@127.0.0.1:${port}`;
    const out = join(dir, 'shared');
    const first = cli(join(dir, 'a'), 'sweep', '--config', config, '--out', out, '--queue', url);
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/2 runs in .*: 2 enqueued now, 0 already in the queue/);
    const second = cli(join(dir, 'a'), 'sweep', '--config', config, '--out', out, '--queue', url);
    expect(second.stdout).toMatch(/0 enqueued now, 2 already in the queue/);

    const workers = ['w1', 'w2'].map((w) => startCli(join(dir, w), 'worker', '--queue', url, ...FAST));
    await until('the table', () => workers.some((w) => /every run finished; table written/.test(w.err)));
    expect(readFileSync(join(out, 'table.md'), 'utf8')).toBe(local.md);
    expect(readFileSync(join(out, 'table.csv'), 'utf8')).toBe(local.csv);

    const third = cli(join(dir, 'a'), 'sweep', '--config', config, '--out', out, '--queue', url);
    expect(third.stdout, third.stderr).toMatch(/every run of .* has finished/);
    const status = cli(join(dir, 'a'), 'sweep', '--status', '--out', out, '--queue', url);
    expect(status.stdout).toMatch(/\[#{30}\] 2\/2 finished, 0 running, 0 queued, 0 failed/);
    expect(status.stdout).toMatch(/row 1\/2 \(0\.001\): finished — validation/);

    for (const w of workers) w.child.kill('SIGTERM');
    const ends = await Promise.all(workers.map((w) => w.exited));
    expect(ends.map((e) => e.code)).toEqual([0, 0]);
    // Each run trained once, by one of the two; the password never printed.
    expect(trainedLines(workers.map((w) => w.err))).toEqual(['row 1/2 (0.001)', 'row 2/2 (0.005)']);
    for (const text of [first.stdout, first.stderr, status.stdout, ...workers.map((w) => w.err)]) expect(text).not.toContain('s3cret');
    await stopRedis(redis);
  });

  it('a worker killed mid-run and a restarted Redis: another worker resumes from the checkpoint, nothing finished is lost or run again', async () => {
    const dir = tmp();
    const port = await freePort();
    const aof = ['--appendonly', 'yes', '--appendfsync', 'always'];
    let redis = await startRedis(port, dir, aof);
    const url = `redis://127.0.0.1:${port}`;
    const out = join(dir, 'shared');
    expect(cli(dir, 'sweep', '--config', config, '--out', out, '--queue', url).status).toBe(0);

    // The first worker finishes row 1, and is killed one epoch into row 2.
    const w1 = startCli(join(dir, 'w1'), 'worker', '--queue', url, ...FAST);
    await until('row 2 epoch 1 on the first worker', () => /row 2\/2 \(0\.005\) epoch 1\/3/.test(w1.err));
    w1.child.kill('SIGKILL');
    expect((await w1.exited).signal).toBe('SIGKILL');
    await stopRedis(redis);
    redis = await startRedis(port, dir, aof);

    const w2 = startCli(join(dir, 'w2'), 'worker', '--queue', url, ...FAST);
    await until('the table', () => /every run finished; table written/.test(w2.err));
    expect(readFileSync(join(out, 'table.md'), 'utf8')).toBe(local.md);
    expect(readFileSync(join(out, 'table.csv'), 'utf8')).toBe(local.csv);
    w2.child.kill('SIGTERM');
    expect((await w2.exited).code).toBe(0);

    expect(trainedLines([w1.err])).toEqual(['row 1/2 (0.001)']);
    expect(trainedLines([w2.err])).toEqual(['row 2/2 (0.005)']);
    expect(w2.err).toMatch(/row 2\/2 \(0\.005\): resuming in /);
    expect(w2.err).not.toMatch(/row 1\/2/);
    const run = JSON.parse(readFileSync(join(out, 'run-2-0.005', 'run.json'), 'utf8')) as Record<string, unknown>;
    expect(run['resumedAfter']).toBe('killed');
    expect(run['resumedFromEpoch']).toBeGreaterThanOrEqual(1);
    const history = JSON.parse(readFileSync(join(out, 'run-2-0.005', 'history.json'), 'utf8')) as { epoch: number }[];
    expect(history.map((h) => h.epoch)).toEqual([1, 2, 3]);
    await stopRedis(redis);
  });

  it('a job of another tapegrad stays queued and its worker stops saying why; a config the decoder refuses fails once, without retries', async () => {
    const dir = tmp();
    const port = await freePort();
    const redis = await startRedis(port, dir);
    const url = `redis://127.0.0.1:${port}`;
    const { Queue } = await import('bullmq');
    const queue = new Queue(QUEUE_NAME, { connection: { host: '127.0.0.1', port } });
    const job = (id: string, over: Partial<JobData>): Promise<unknown> =>
      queue.add(
        'run',
        {
          format: 'tapegrad.job',
          sweepId: 'test',
          sweepDir: join(dir, 'nowhere'),
          row: 0,
          values: [1],
          config: { name: 'x' },
          version: tapegradVersion(),
          dataSha256: sum,
          ...over,
        } satisfies JobData,
        { jobId: id, attempts: 3 },
      );
    const sum = await dataChecksum(CIFAR_DIR);
    await job('bad-config', { config: { name: 'x', training: { optimizer: { kind: 'momentum', lr: -1, momentum: 0.8 } } } });
    const w = startCli(join(dir, 'w'), 'worker', '--queue', url, ...FAST);
    await until('the refused config', () => /job bad-config: failed/.test(w.err));
    const bad = (await queue.getJob('bad-config'))!;
    expect(await bad.getState()).toBe('failed');
    expect(bad.attemptsMade).toBe(1);
    expect(bad.failedReason).toMatch(/training\.optimizer\.lr: expected a positive number, got -1/);

    await job('other-version', { version: '0.0.0-other' });
    const end = await w.exited;
    expect(end.code).toBe(1);
    const last = w.err.trim().split('\n').pop()!;
    expect(last).toMatch(
      /^tapegrad: job other-version of .* was made by tapegrad 0\.0\.0-other for data [0-9a-f]{12}…, but this worker is tapegrad \d+\.\d+\.\d+ .*: start workers with the sweep's tapegrad version and data \(--data\); the job stays queued for them$/,
    );
    expect(['delayed', 'waiting']).toContain(await (await queue.getJob('other-version'))!.getState());
    await queue.close();
    await stopRedis(redis);
  });

  it('reproduce --queue: the worker that finishes the last run writes report.md, with the tables its sweeps wrote', async () => {
    const dir = tmp();
    const port = await freePort();
    const redis = await startRedis(port, dir);
    const url = `redis://127.0.0.1:${port}`;
    const out = join(dir, 'report');
    const quick = ['--only', 'table1,table7', '--configs', join(REPO, 'examples/configs'), '--epochs', '1', '--limit-train', '500', '--limit-test', '100'];
    const e = cli(join(dir, 'a'), 'reproduce', ...quick, '--out', out, '--queue', url);
    expect(e.status, e.stderr).toBe(0);
    expect(e.stdout).toMatch(/table7: 2 runs: 2 enqueued now/);
    const w = startCli(join(dir, 'w'), 'worker', '--queue', url, ...FAST);
    await until('the report', () => /report written: /.test(w.err));
    const report = readFileSync(join(out, 'report.md'), 'utf8');
    const table = readFileSync(join(out, 'table7', 'table.md'), 'utf8')
      .split('\n')
      .slice(2)
      .join('\n')
      .trim();
    expect(report).toContain(table);
    expect(report).toMatch(/by `tapegrad worker` processes from a queue/);
    expect(report).toMatch(/## Table 1: mean and standard deviation/);
    // Enqueueing the finished report again adds nothing and says where it is.
    const again = cli(join(dir, 'a'), 'reproduce', ...quick, '--out', out, '--queue', url);
    expect(again.status, again.stderr).toBe(1);
    expect(again.stderr.trim()).toBe(`tapegrad: ${out} holds a finished report, which is never overwritten: choose another --out`);
    w.child.kill('SIGTERM');
    expect((await w.exited).code).toBe(0);
    await stopRedis(redis);
  });

  it('--queue takes redis:// and rediss:// URLs only, and never shows their password', () => {
    const q = parseQueueUrl('rediss://user:pa55@cache.example:6380/2');
    expect(E.isRight(q) && q.right.shown).toBe('rediss://user:***@cache.example:6380/2');
    const http = parseQueueUrl('http://localhost:6379');
    expect(E.isLeft(http) && http.left.message).toBe("--queue 'http:…' is not a Redis URL: give redis://HOST:PORT (or rediss://… for TLS)");
    const r = cli(tmp(), 'worker', '--queue', 'localhost:6379');
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe("tapegrad: --queue 'localhost:…' is not a Redis URL: give redis://HOST:PORT (or rediss://… for TLS)");
  });
});
