/**
 * The code's map stays true: every path ARCHITECTURE.md names exists; no
 * import cycles inside src/ (dynamic imports included); and folders outside
 * src/core reach core only through its public surface (index.ts) and its one
 * named internal module (internal.ts).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const REPO = resolve(import.meta.dirname, '..');
const SRC = join(REPO, 'src');

const filesUnder = (dir: string): string[] =>
  readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? filesUnder(p) : /\.(ts|mts|mjs)$/.test(f) && !f.endsWith('.d.mts') ? [p] : [];
  });

/** The modules a file imports at run time (type-only imports are erased), resolved to files under the repo. */
const runtimeImports = (file: string): { to: string; typeOnly: boolean }[] => {
  const text = readFileSync(file, 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/^\s*\/\/.*$/gm, '');
  const found: { spec: string; typeOnly: boolean }[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(import|export)\s+(type\s+)?(?:[^;'"]*?\sfrom\s+)?'([^']+)'/g))
    found.push({ spec: m[3]!, typeOnly: m[2] !== undefined });
  // Dynamic imports; `import('./x.js').T` in a type position is not one.
  for (const m of text.matchAll(/\bimport\(\s*'([^']+)'\s*\)(?!\s*\.)/g)) found.push({ spec: m[1]!, typeOnly: false });
  return found
    .filter((f) => f.spec.startsWith('.'))
    .map((f) => {
      const base = resolve(dirname(file), f.spec);
      const to = [base.replace(/\.js$/, '.ts'), base.replace(/\.mjs$/, '.mts'), base].find((p) => existsSync(p)) ?? base;
      return { to, typeOnly: f.typeOnly };
    });
};

const sources = filesUnder(SRC);
const rel = (p: string) => relative(REPO, p);

describe('ARCHITECTURE.md', () => {
  it('names only files and folders that exist', () => {
    const text = readFileSync(join(REPO, 'ARCHITECTURE.md'), 'utf8');
    const named = new Set([
      ...[...text.matchAll(/\]\(([^)#\s]+)\)/g)].map((m) => m[1]!).filter((p) => !/^[a-z]+:/.test(p)),
      ...[...text.matchAll(/\b((?:src|test|examples|bench|scripts|bin)\/[\w./-]*[\w/])/g)].map((m) => m[1]!),
    ]);
    expect(named.size).toBeGreaterThan(20);
    expect([...named].filter((p) => !existsSync(join(REPO, p)))).toEqual([]);
  });
});

describe('imports', () => {
  it('form no cycle inside src/, dynamic imports included', () => {
    const graph = new Map(
      sources.map((f) => [
        f,
        runtimeImports(f)
          .filter((i) => !i.typeOnly && i.to.startsWith(SRC))
          .map((i) => i.to),
      ]),
    );
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (f: string): void => {
      state.set(f, 'open');
      stack.push(f);
      for (const g of graph.get(f) ?? []) {
        if (state.get(g) === 'open') cycles.push([...stack.slice(stack.indexOf(g)), g].map(rel).join(' → '));
        else if (state.get(g) === undefined) visit(g);
      }
      stack.pop();
      state.set(f, 'done');
    };
    for (const f of sources) if (state.get(f) === undefined) visit(f);
    expect(cycles).toEqual([]);
  });

  it('reach src/core from other folders only through index.ts and internal.ts', () => {
    const allowed = new Set(['src/core/index.ts', 'src/core/internal.ts']);
    const outside = sources.filter((f) => !rel(f).startsWith('src/core/') && rel(f).split('/').length > 2);
    const crossings = outside.flatMap((f) =>
      runtimeImports(f)
        .filter((i) => rel(i.to).startsWith('src/core/') && !allowed.has(rel(i.to)))
        .map((i) => `${rel(f)} → ${rel(i.to)}`),
    );
    expect(crossings).toEqual([]);
  });
});
