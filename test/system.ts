/**
 * One rule for suites that need a system package (Chromium, redis-server,
 * headless-gl with Xvfb): when it is missing the suite skips with one line
 * naming the package to install, and the run ends with a summary of every skip
 * (test/global-setup.ts prints it). Under CI=true nothing may skip: a missing
 * package fails the suite with the same line.
 */
import { appendFileSync } from 'node:fs';
import { it } from 'vitest';

/** What a suite needs from the system, and how to get it. */
export interface SystemNeed {
  /** The suite, as the summary names it (e.g. 'browser tests (test/web/browser.test.ts)'). */
  readonly suite: string;
  /** Whether the package is here. */
  readonly found: boolean;
  /** Why not, and what to install: e.g. 'Chromium not found: apt-get install chromium'. */
  readonly missing: string;
}

export const inCI = (): boolean => process.env['CI'] === 'true';

/** The environment variable naming the file that skip lines are appended to (set by test/global-setup.ts). */
export const SKIP_LOG_ENV = 'TAPEGRAD_SKIP_LOG';

/**
 * Whether `need`'s suite can run. When it cannot: in CI a test that fails with
 * the reason is registered (so the run fails); elsewhere one line is printed
 * and logged for the summary, and the suite should `describe.skipIf(!ok)`.
 */
export const requireSystem = (need: SystemNeed): boolean => {
  if (need.found) return true;
  const line = `${need.suite} skipped: ${need.missing}`;
  if (inCI()) {
    it(`has what it needs (CI=true: nothing may skip)`, () => {
      throw new Error(`CI=true and ${need.suite} cannot run: ${need.missing}`);
    });
    return false;
  }
  console.warn(line);
  const log = process.env[SKIP_LOG_ENV];
  if (log !== undefined && log !== '') appendFileSync(log, `${line}\n`);
  return false;
};
