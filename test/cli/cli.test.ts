/**
 * The CLI end to end on a small slice of the real data: every output file,
 * plots included; a bad config exits 2 naming the key; an interrupted run
 * (SIGINT) resumes to the same history as an uninterrupted one.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CIFAR_DIR } from '../data/location.js';

const CLI = ['--import', 'tsx', 'src/cli/main.ts'];
const env = { ...process.env, CIFAR100_DIR: CIFAR_DIR };
const cli = (...args: string[]) => spawnSync('node', [...CLI, ...args], { encoding: 'utf8', env });
const tmp = () => mkdtempSync(join(tmpdir(), 'tapegrad-cli-'));
const small = ['--limit-train', '600', '--limit-test', '200', '--epochs', '2', '--backend', 'cpu'];
const strip = (h: { seconds: number }[]) => h.map(({ seconds: _s, ...rest }) => rest);

describe('tapegrad train', () => {
  it('writes every output file, with the expected columns, and prints the accuracies', () => {
    const out = join(tmp(), 'run');
    const r = cli('train', '--config', 'examples/configs/headline.yaml', '--out', out, ...small);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/validation accuracy: \d+\.\d\d%\s+\(paper: 29\.69%\)/);
    expect(r.stdout).toMatch(/test accuracy: +\d+\.\d\d%\s+\(paper: 29\.23%\)/);
    expect(r.stderr).toMatch(/backend: cpu: WebAssembly SIMD/); // the paper preset stays on the GEMM the report was recorded on
    for (const f of [
      'config.yaml',
      'config.json',
      'run.json',
      'history.json',
      'history.csv',
      'checkpoint.json',
      'model.json',
      'result.json',
      'accuracy.svg',
      'accuracy.png',
      'loss.svg',
      'loss.png',
    ]) {
      expect(existsSync(join(out, f)), f).toBe(true);
    }
    const csv = readFileSync(join(out, 'history.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).toBe('epoch,train_loss,train_accuracy,val_loss,val_accuracy,seconds');
    expect(csv).toHaveLength(3);
    expect(readFileSync(join(out, 'accuracy.png')).subarray(1, 4).toString()).toBe('PNG');
    expect(readFileSync(join(out, 'loss.svg'), 'utf8')).toMatch(/^<svg/);
    const result = JSON.parse(readFileSync(join(out, 'result.json'), 'utf8'));
    expect(result.epochsRun).toBe(2);
    expect(result.testAccuracy).toBeGreaterThan(0);
    // A finished run is never overwritten.
    const again = cli('train', '--config', 'examples/configs/headline.yaml', '--out', out, ...small);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/finished run, which is never overwritten/);
  });

  it('a bad config exits 2 with a message naming the key', () => {
    const dir = tmp();
    writeFileSync(join(dir, 'bad.yaml'), 'name: x\ntraining:\n  epochz: 3\n');
    const r = cli('train', '--config', join(dir, 'bad.yaml'));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown key 'training\.epochz'/);
    writeFileSync(join(dir, 'bad2.yaml'), 'name: x\nmodel:\n  activation: swish\n');
    const r2 = cli('train', '--config', join(dir, 'bad2.yaml'));
    expect(r2.status).toBe(2);
    expect(r2.stderr).toMatch(/model\.activation.*"swish"/);
  });

  it('a bad flag exits 2 listing the valid choices', () => {
    const r = cli('train', '--config', 'examples/configs/headline.yaml', '--backend', 'tpu');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/Allowed choices are auto, cpu, gpujs, reference, webgpu/);
    const r2 = cli('reproduce', '--only', 'table9');
    expect(r2.status).toBe(2);
    expect(r2.stderr).toMatch(/unknown section table9: choose from table1/);
  });

  it('an interrupted run resumes to the same final history as an uninterrupted one', async () => {
    const args = ['--config', 'examples/configs/headline.yaml', '--limit-train', '5000', '--limit-test', '100', '--epochs', '5', '--backend', 'cpu'];
    const full = join(tmp(), 'full');
    expect(cli('train', ...args, '--out', full).status).toBe(0);

    const part = join(tmp(), 'part');
    const child = spawn('node', [...CLI, 'train', ...args, '--out', part], { env });
    let err = '';
    const code = await new Promise<number | null>((resolve) => {
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        if (/epoch 2\/5:/.test(err) && !child.killed) child.kill('SIGINT');
      });
      child.on('exit', (c) => resolve(c));
    });
    expect(code, err).toBe(130);
    expect(err).toMatch(/continue with: tapegrad train --resume/);
    const saved = JSON.parse(readFileSync(join(part, 'history.json'), 'utf8'));
    expect(saved.length).toBeGreaterThanOrEqual(2);
    expect(saved.length).toBeLessThan(5);
    const resumed = cli('train', '--resume', part);
    expect(resumed.status, resumed.stderr).toBe(0);
    const a = JSON.parse(readFileSync(join(full, 'history.json'), 'utf8'));
    const b = JSON.parse(readFileSync(join(part, 'history.json'), 'utf8'));
    expect(strip(b)).toEqual(strip(a));
    expect(JSON.parse(readFileSync(join(part, 'result.json'), 'utf8')).testAccuracy).toBe(
      JSON.parse(readFileSync(join(full, 'result.json'), 'utf8')).testAccuracy,
    );
  });
});

describe('tapegrad sweep, gradcheck, stats, reproduce', () => {
  it('a sweep writes its table with the paper beside ours', () => {
    const out = join(tmp(), 'sweep');
    const r = cli('sweep', '--config', 'examples/configs/table7.yaml', '--out', out, ...small);
    expect(r.status, r.stderr).toBe(0);
    const md = readFileSync(join(out, 'table.md'), 'utf8');
    expect(md).toMatch(/\| α \| Validation accuracy \| Early stop epoch \| Test accuracy \| Paper: validation accuracy \| Paper: early stop epoch \|/);
    expect(md).toMatch(/\| 0\.005 \| \d+\.\d\d% \| - \| \d+\.\d\d% \| 27\.94% \| 50 \|/);
    expect(readFileSync(join(out, 'table.csv'), 'utf8').split('\n')[0]).toBe(
      'α,val_accuracy,early_stop_epoch,test_accuracy,epochs_run,diverged_at_epoch,paper_val_accuracy,paper_early_stop',
    );
    expect(existsSync(join(out, 'best-accuracy.png'))).toBe(true);
  });

  it('gradcheck prints Table 2 with differences below ε²', () => {
    const r = cli('gradcheck');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\| Output bias \|/);
    expect(r.stdout).toMatch(/below ε² = 1e-4/);
  });

  it('stats prints Table 1: mean 0 and std 1 per channel', () => {
    const r = cli('stats');
    expect(r.status).toBe(0);
    for (const ch of ['Red', 'Green', 'Blue']) expect(r.stdout).toMatch(new RegExp(`\\| ${ch} \\| -?\\d\\.\\d\\de-?\\d+ \\| 1\\.0000\\d\\d \\|`));
  });

  it('reproduce writes one report with tables, figures and the summary', () => {
    const out = join(tmp(), 'report');
    const r = cli('reproduce', '--only', 'table1,table2,table7', '--out', out, ...small);
    expect(r.status, r.stderr).toBe(0);
    const report = readFileSync(join(out, 'report.md'), 'utf8');
    expect(report).toMatch(/## Table 1/);
    expect(report).toMatch(/## Table 2/);
    expect(report).toMatch(/## Table 7/);
    expect(report).toMatch(/!\[accuracy\]\(table7\/best-accuracy\.png\)/);
    expect(report).toMatch(/Quick run with overrides/);
    // The report's tables follow its conventions, and the page says which.
    expect(report).toMatch(/Conventions: the `paper` preset/);
    expect(existsSync(join(out, 'table7', 'best-loss.png'))).toBe(true);
  });
});
