/**
 * The README's examples are the files in examples/, verbatim, and they run:
 * the tape API example, devices and memory, the build-train-evaluate-save-reload
 * quickstart, the transformations, and composing your own models.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CIFAR_DIR } from './data/location.js';

const readme = readFileSync('README.md', 'utf8');
const run = (file: string) => spawnSync('node', ['--import', 'tsx', file], { encoding: 'utf8', env: { ...process.env, CIFAR100_DIR: CIFAR_DIR } });

describe('README', () => {
  it('shows the two commands that matter', () => {
    expect(readme).toContain('npm ci && npm start');
    expect(readme).toContain('npm ci && npm test');
    const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
    expect(pkg.scripts.start).toContain('examples/configs/headline.yaml');
    expect(readFileSync('.ci/run', 'utf8')).toMatch(/\nnpm ci --no-audit --no-fund\n[\s\S]*\nnpm test\n/);
  });

  for (const [file, expected] of [
    ['examples/tape.ts', /gradcheck: 15 elements, worst difference \d\.\de-\d+/],
    ['examples/quickstart.ts', /test accuracy 0\.\d+\nreloaded test accuracy 0\.\d+/],
    ['examples/devices.ts', /^the step kept 4 bytes on cpu: loss \d+\.\d{3}\nreference agrees: true\n$/],
    [
      'examples/transforms.ts',
      /^row sums of H \[.*\] H diagonal \[.*\]\nH·v \[.*\] directional derivative -?\d+\.\d+\nper-example gradient norms( \d+\.\d{3}){8}\n$/,
    ],
    [
      'examples/jit.ts',
      /^same loss and gradients, bit for bit: true; traced 1 time\(s\)\n\{ lambda [^\n]* \. let\n(.*\n){2}.*relu \w+( {2}⟨fused \d+⟩)?\n( {2}fused \d+: \d+ ops, \d+ elements, one pass \([a-zA-Z →]+\), \d+ results? written( \(the sum computed in the pass\))?\n)+$/,
    ],
    [
      'examples/compose.ts',
      /cnn test accuracy 0\.\d+\nreloaded cnn test accuracy 0\.\d+\nresidual mlp test accuracy 0\.\d+\nlayerNorm gradients: 20 random cases/,
    ],
  ] as const) {
    it(`${file} is in the README verbatim and runs`, () => {
      const code = readFileSync(file, 'utf8').trimEnd();
      expect(readme).toContain(code);
      const r = run(file);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(expected);
      if (file === 'examples/quickstart.ts') {
        const [a, b] = [...r.stdout.matchAll(/test accuracy (0\.\d+)/g)].map((m) => Number(m[1]));
        expect(b).toBe(a); // the reloaded model predicts exactly as the trained one
        expect(a).toBeGreaterThan(0.08); // better than chance (5%) after 5 epochs on 2,000 images
      }
      if (file === 'examples/transforms.ts') {
        // grad of grad gives the Hessian's row sums; f's Hessian is diagonal, so they equal hessian()'s diagonal.
        const m = /row sums of H \[(.*)\] H diagonal \[(.*)\]/.exec(r.stdout)!;
        const [sums, diag] = [m[1]!, m[2]!].map((s) => s.split(',').map(Number));
        sums!.forEach((v, i) => {
          expect(Math.abs(v - diag![i]!)).toBeLessThan(1e-12);
        });
      }
      if (file === 'examples/compose.ts') {
        const [cnn, reloaded, mlp] = [...r.stdout.matchAll(/test accuracy (0\.\d+)/g)].map((m) => Number(m[1]));
        expect(reloaded).toBe(cnn); // the CNN loaded from its spec and weights (and batchNorm state) predicts as trained
        expect(mlp).toBeGreaterThan(0.07); // the residual MLP learned: chance is 5%
      }
    });
  }
});
