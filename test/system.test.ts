/**
 * The rule for suites needing a system package (test/system.ts), run on a
 * fixture suite whose package is missing: it skips with one line and is named
 * in the end-of-run summary; under CI=true the same run fails.
 */
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const REPO = resolve(import.meta.dirname, '..');
const child = (ci: boolean) => {
  const env: NodeJS.ProcessEnv = { ...process.env, CI: ci ? 'true' : '' };
  delete env['TAPEGRAD_SKIP_LOG'];
  delete env['VITEST'];
  delete env['VITEST_WORKER_ID'];
  delete env['VITEST_POOL_ID'];
  const r = spawnSync(
    process.execPath,
    [join(REPO, 'node_modules/vitest/vitest.mjs'), 'run', '--config', join(REPO, 'test/fixtures/system/vitest.config.ts')],
    { cwd: REPO, env, encoding: 'utf8', timeout: 60_000 },
  );
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
};

describe('a suite whose system package is missing', () => {
  it('skips with one line naming the package, and the run ends with a summary of the skip', () => {
    const r = child(false);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toContain('the fixture suite skipped: frobnicator not found: apt-get install frobnicator');
    expect(r.out).toMatch(/1 suite skipped for a missing system package[^\n]*\n\s+- the fixture suite skipped: frobnicator not found/);
  });

  it('fails under CI=true, naming the package', () => {
    const r = child(true);
    expect(r.status).not.toBe(0);
    expect(r.out).toContain('CI=true and the fixture suite cannot run: frobnicator not found: apt-get install frobnicator');
  });
});
