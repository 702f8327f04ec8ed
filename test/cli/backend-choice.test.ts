/**
 * Which backend a command uses: --backend, else the config's `backend` (when not
 * auto), else TAPEGRAD_BACKEND, else auto-detection; an unknown name anywhere is
 * a one-line error listing the valid names (exit code 2).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chooseBackend } from '../../src/core/index.js';
import { CIFAR_DIR } from '../data/location.js';

const cli = (env: Record<string, string>, ...args: string[]) =>
  spawnSync('node', ['--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8', env: { ...process.env, CIFAR100_DIR: CIFAR_DIR, ...env } });
const small = ['--limit-train', '300', '--limit-test', '100', '--epochs', '1'];

describe('choosing a backend', () => {
  it('follows the precedence: explicit name, then TAPEGRAD_BACKEND, then auto-detection', () => {
    const saved = process.env['TAPEGRAD_BACKEND'];
    try {
      process.env['TAPEGRAD_BACKEND'] = 'reference';
      expect(chooseBackend('cpu').name).toBe('cpu');
      expect(chooseBackend('auto')).toEqual({ name: 'reference', reason: 'TAPEGRAD_BACKEND=reference' });
      expect(chooseBackend(undefined).name).toBe('reference');
      process.env['TAPEGRAD_BACKEND'] = 'bogus';
      expect(() => chooseBackend(undefined)).toThrow("unknown backend 'bogus' in TAPEGRAD_BACKEND: choose one of auto, reference, cpu, gpujs, webgpu");
      expect(() => chooseBackend('cuda', 'the config')).toThrow("unknown backend 'cuda' (from the config): choose one of auto, reference, cpu, gpujs, webgpu");
      delete process.env['TAPEGRAD_BACKEND'];
      expect(chooseBackend(undefined).reason).toMatch(/^auto: /);
    } finally {
      if (saved === undefined) delete process.env['TAPEGRAD_BACKEND'];
      else process.env['TAPEGRAD_BACKEND'] = saved;
    }
  });

  it('the command line: an unknown TAPEGRAD_BACKEND is one line and exit code 2', () => {
    const r = cli(
      { TAPEGRAD_BACKEND: 'bogus' },
      'train',
      '--config',
      'examples/configs/headline.yaml',
      ...small,
      '--out',
      join(mkdtempSync(join(tmpdir(), 'tapegrad-be-')), 'run'),
    );
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe("tapegrad: unknown backend 'bogus' in TAPEGRAD_BACKEND: choose one of auto, reference, cpu, gpujs, webgpu");
  });

  it('the command line honours TAPEGRAD_BACKEND when neither the flag nor the config names a backend, and the flag over it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tapegrad-be-'));
    const r = cli({ TAPEGRAD_BACKEND: 'reference' }, 'train', '--config', 'examples/configs/headline.yaml', ...small, '--out', join(dir, 'env'));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('backend: reference: plain TypeScript loops (float64 accumulation); slow, exact — TAPEGRAD_BACKEND=reference');
    expect(JSON.parse(readFileSync(join(dir, 'env', 'run.json'), 'utf8')).backendReason).toBe('TAPEGRAD_BACKEND=reference');
    const f = cli(
      { TAPEGRAD_BACKEND: 'reference' },
      'train',
      '--config',
      'examples/configs/headline.yaml',
      ...small,
      '--backend',
      'cpu',
      '--out',
      join(dir, 'flag'),
    );
    expect(f.status, f.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(dir, 'flag', 'run.json'), 'utf8')).backend).toMatch(/^cpu: /);
  });

  it("sweep's start line names the backend its runs use (--backend), not the command's default", () => {
    const dir = mkdtempSync(join(tmpdir(), 'tapegrad-be-'));
    const config = join(dir, 'sweep.yaml');
    writeFileSync(config, 'name: be\nbackend: cpu\nmodel: { hidden: [8] }\nsweep:\n  grid:\n    seed: [1]\n');
    const r = cli({ TAPEGRAD_BACKEND: 'cpu' }, 'sweep', '--config', config, ...small, '--backend', 'reference', '--jobs', '1', '--out', join(dir, 'out'));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain("backend: reference: plain TypeScript loops (float64 accumulation); slow, exact — chosen in --backend ('reference')");
    expect(r.stderr).not.toMatch(/backend: cpu/);
  });
});
