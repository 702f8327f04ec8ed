/**
 * The API reference (`npm run docs`: typedoc over the two entries, tapegrad
 * in browsers and tapegrad/node) builds without errors and documents both entries'
 * exports with their JSDoc.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const out = mkdtempSync(join(tmpdir(), 'tapegrad-docs-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('the API reference', () => {
  it('builds from both entries with no error', () => {
    const r = spawnSync('npx', ['typedoc', '--out', out], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/Found 0 errors/);
    // The portable entry's functions and classes, and the Node entry's file APIs, each with its JSDoc.
    expect(readFileSync(join(out, 'functions/portable.evaluate.html'), 'utf8')).toContain('accuracy of a model over a whole');
    expect(existsSync(join(out, 'classes/portable.Tensor.html'))).toBe(true);
    expect(readFileSync(join(out, 'modules/node.html'), 'utf8')).toContain('loadCifar100');
    expect(existsSync(join(out, 'functions/portable.loadCifar100.html'))).toBe(false); // files are tapegrad/node's
  });
});
