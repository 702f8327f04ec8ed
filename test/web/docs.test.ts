/**
 * The API reference (`npm run docs`: typedoc over the two entries, tapegrad
 * in browsers and tapegrad/node) builds without errors, every export has its
 * JSDoc, and every type an export mentions is exported.
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
    const r = spawnSync('npx', ['typedoc', '--out', out, '--validation.notDocumented'], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: removes terminal colour escapes
    const log = (r.stdout + r.stderr).replace(/\x1b\[[0-9;]*m/g, '');
    expect(log).toMatch(/Found 0 errors/);
    // Every export of both entries has its JSDoc, and every type an export mentions is exported too.
    // (Members are checked as well, except the \`checked\` namespace's, a mapped type of the ops it wraps.)
    const undocumented = log.split('\n').filter((l) => /does not have any documentation/.test(l) && !/checked\.__type\./.test(l));
    expect(undocumented).toEqual([]);
    expect(log.split('\n').filter((l) => /is referenced by .* but not included in the documentation/.test(l))).toEqual([]);
    // The portable entry's functions and classes, and the Node entry's file APIs, each with its JSDoc.
    expect(readFileSync(join(out, 'functions/portable.evaluate.html'), 'utf8')).toContain('accuracy of a model over a whole');
    expect(existsSync(join(out, 'classes/portable.Tensor.html'))).toBe(true);
    expect(readFileSync(join(out, 'modules/node.html'), 'utf8')).toContain('loadCifar100');
    expect(existsSync(join(out, 'functions/portable.loadCifar100.html'))).toBe(false); // files are tapegrad/node's
  });
});
