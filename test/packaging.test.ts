/**
 * The package as a user gets it: `npm pack`'s tarball (of the build `npm test`
 * makes first), unpacked into a fresh folder with only its dependencies (the
 * optional peers absent). Its declarations type-check with skipLibCheck off
 * and no ambient types, under TypeScript 5 and 7; the command prints its version and trains from a
 * shipped example config named as the README names it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CIFAR_DIR } from './data/location.js';

const REPO = resolve(import.meta.dirname, '..');
const root = mkdtempSync(join(tmpdir(), 'tapegrad-pack-'));
const user = join(root, 'user');
const modules = join(user, 'node_modules');
const link = (name: string) => {
  mkdirSync(join(modules, name, '..'), { recursive: true });
  symlinkSync(join(REPO, 'node_modules', name), join(modules, name), 'dir');
};

beforeAll(() => {
  if (!existsSync(join(REPO, 'dist', 'index.d.ts'))) throw new Error('no dist/: build first (npm run build; npm test does it)');
  const pack = spawnSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', root], { cwd: REPO, encoding: 'utf8' });
  expect(pack.status, pack.stderr).toBe(0);
  const [{ filename }] = JSON.parse(pack.stdout) as [{ filename: string }];
  mkdirSync(join(modules, 'tapegrad'), { recursive: true });
  const untar = spawnSync('tar', ['-xzf', join(root, filename), '-C', join(modules, 'tapegrad'), '--strip-components=1']);
  expect(untar.status).toBe(0);
  // The dependencies npm would install with it: its own, and io-ts' required peer fp-ts. No optional peer.
  for (const d of ['io-ts', 'fp-ts', 'pure-rand', 'tar']) link(d);
  writeFileSync(join(user, 'package.json'), JSON.stringify({ type: 'module' }));
});

describe('the packed package', () => {
  it('ships the example configs', () => {
    expect(existsSync(join(modules, 'tapegrad', 'examples', 'configs', 'headline.yaml'))).toBe(true);
  });

  // TypeScript 5 (the project's own) and 7 (the native compiler: its own defaults, e.g. for `types`), both in devDependencies.
  it.each([
    ['TypeScript 5', 'typescript'],
    ['TypeScript 7', 'typescript7'],
  ])('type-checks in a consumer with skipLibCheck off, no ambient types and the optional peers absent (%s)', (_name, compiler) => {
    writeFileSync(
      join(user, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, skipLibCheck: false, noEmit: true, types: [] },
        include: ['index.ts'],
      }),
    );
    writeFileSync(
      join(user, 'index.ts'),
      [
        "import { Key, matmul, mlp, fit, saveModel } from 'tapegrad';",
        "import { loadCifar100, ensureCifar100 } from 'tapegrad/data';",
        "import * as node from 'tapegrad/node';",
        'export const shape: readonly number[] = matmul(new Key(0).normal([2, 4]), new Key(1).normal([4, 3])).shape;',
        'export const all = [mlp([4, 3]), fit, saveModel, loadCifar100, ensureCifar100, node.tidy];',
      ].join('\n'),
    );
    const tsc = spawnSync(process.execPath, [join(REPO, 'node_modules', compiler, 'bin', 'tsc'), '-p', user], { cwd: user, encoding: 'utf8' });
    const errors = tsc.stdout
      .split('\n')
      .filter((l) => /error TS/.test(l))
      .map((l) => l.replace(/\(\d+,\d+\)/, ''));
    expect(errors).toEqual([]);
    expect(tsc.status, `${tsc.stdout}${tsc.stderr}`).toBe(0);
  });

  it('the command prints its version and trains from a shipped config named as in the README', () => {
    for (const p of ['commander', 'cli-progress', 'yaml', 'vega', 'vega-lite', '@resvg/resvg-js']) link(p);
    const cli = (...args: string[]) =>
      spawnSync(process.execPath, [join(modules, 'tapegrad', 'bin', 'tapegrad.js'), ...args], {
        cwd: user,
        encoding: 'utf8',
        env: { ...process.env, CIFAR100_DIR: CIFAR_DIR },
      });
    const v = cli('--version');
    expect(v.status, v.stderr).toBe(0);
    expect(v.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    expect(existsSync(join(user, 'examples'))).toBe(false);
    const r = cli(
      'train',
      '--config',
      'examples/configs/headline.yaml',
      '--limit-train',
      '300',
      '--limit-test',
      '50',
      '--epochs',
      '1',
      '--backend',
      'cpu',
      '--out',
      'run',
    );
    expect(r.status, r.stderr).toBe(0);
    expect(existsSync(join(user, 'run', 'result.json'))).toBe(true);
  });
});
