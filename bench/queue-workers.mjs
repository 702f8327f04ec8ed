// `reproduce --queue` finished by 1, 2, 3 worker processes on this machine (README,
// "Sweeps on many machines"): wall time from enqueue to report.md, and the
// per-run times (result.json `seconds`) from which a cluster's time is computed.
// Usage: npm run build && node bench/queue-workers.mjs [epochs] [limitTrain] [limitTest]
// Needs redis-server and CIFAR100_DIR. Each worker runs one run at a time on one
// thread (TAPEGRAD_THREADS=1), so N processes ask for N cores.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const [epochs = '2', limitTrain = '5000', limitTest = '1000'] = process.argv.slice(2);
const bin = resolve(import.meta.dirname, '../bin/tapegrad.js');
const root = mkdtempSync(join(tmpdir(), 'tapegrad-queue-bench-'));
const port = await new Promise((res) => {
  const s = createServer();
  s.listen(0, '127.0.0.1', () => {
    const p = s.address().port;
    s.close(() => res(p));
  });
});
const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', root], { stdio: 'ignore' });
await new Promise((r) => setTimeout(r, 500));
const url = `redis://127.0.0.1:${port}`;
const env = { ...process.env, TAPEGRAD_THREADS: '1' };
const quick = ['--epochs', epochs, '--limit-train', limitTrain, '--limit-test', limitTest];

const rows = [];
for (const n of [1, 2, 3]) {
  const out = join(root, `report-${n}`);
  const t0 = performance.now();
  const e = spawnSync('node', [bin, 'reproduce', '--only', 'table3,table4,table5,table6,table7,table8', ...quick, '--out', out, '--queue', url], {
    env,
    encoding: 'utf8',
  });
  if (e.status !== 0) throw new Error(e.stderr);
  const workers = Array.from({ length: n }, () => spawn('node', [bin, 'worker', '--queue', url], { env, stdio: 'ignore' }));
  while (!existsSync(join(out, 'report.md'))) await new Promise((r) => setTimeout(r, 200));
  const wall = (performance.now() - t0) / 1000;
  for (const w of workers) w.kill('SIGTERM');
  await Promise.all(workers.map((w) => new Promise((r) => w.on('exit', r))));
  const runSeconds = readdirSync(out)
    .filter((s) => s.startsWith('table'))
    .flatMap((s) =>
      readdirSync(join(out, s))
        .filter((f) => f.startsWith('run-'))
        .map((f) => JSON.parse(readFileSync(join(out, s, f, 'result.json'), 'utf8')).seconds),
    );
  rows.push({ n, wall, runs: runSeconds.length, sum: runSeconds.reduce((a, b) => a + b, 0), max: Math.max(...runSeconds) });
}
redis.kill('SIGTERM');

console.log(
  `reproduce --queue (tables 3-8, ${rows[0].runs} runs, --epochs ${epochs} --limit-train ${limitTrain} --limit-test ${limitTest}) on ${cpus().length} cores (${cpus()[0].model}), TAPEGRAD_THREADS=1 per worker\n`,
);
console.log('| worker processes | wall time, enqueue to report.md | speed-up | sum of per-run times | longest run |');
console.log('|---|---|---|---|---|');
for (const r of rows)
  console.log(`| ${r.n} | ${r.wall.toFixed(1)} s | ${(rows[0].wall / r.wall).toFixed(2)}x | ${r.sum.toFixed(1)} s | ${r.max.toFixed(1)} s |`);
