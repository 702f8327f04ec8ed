/**
 * Collects the one-line reasons of suites skipped for a missing system package
 * (test/system.ts) and prints them together at the end of the run, so a green
 * run says what it did not test.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SKIP_LOG_ENV } from './system.js';

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'tapegrad-skips-'));
  const log = join(dir, 'skipped.txt');
  // Test processes are forked after this, so they inherit the variable.
  process.env[SKIP_LOG_ENV] = log;
  return () => {
    let lines: string[] = [];
    try {
      lines = [
        ...new Set(
          readFileSync(log, 'utf8')
            .split('\n')
            .filter((l) => l !== ''),
        ),
      ];
    } catch {
      /* nothing skipped */
    }
    rmSync(dir, { recursive: true, force: true });
    if (lines.length === 0) return;
    console.warn(
      `\n${lines.length} suite${lines.length > 1 ? 's' : ''} skipped for a missing system package (CI=true fails instead; .ci/run installs them all):\n${lines.map((l) => `  - ${l}`).join('\n')}\n`,
    );
  };
}
