/**
 * Config files as untrusted input: size and key count bounded before parsing,
 * parsing and decoding linear in the number of keys, errors one short line,
 * and a name with control characters refused before anything trains.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeConfig, MAX_CONFIG_BYTES, MAX_CONFIG_ENTRIES, readRawConfig } from '../../src/experiments/config.js';
import { left, right } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'tapegrad-config-'));
const file = (name: string, text: string): string => {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
};
const timed = <A>(f: () => A): { value: A; ms: number } => {
  const t0 = performance.now();
  const value = f();
  return { value, ms: performance.now() - t0 };
};

describe('config size and key count', () => {
  it('refuses a file over MAX_CONFIG_BYTES before parsing it', () => {
    const f = file('huge.json', `{"name":"x","model":{"hidden":[${'1,'.repeat(MAX_CONFIG_BYTES)}1]}}`);
    const { value, ms } = timed(() => readRawConfig(f));
    expect(left(value).message).toMatch(new RegExp(`^${f}: is \\d+ bytes, more than the ${MAX_CONFIG_BYTES} a config file may be`));
    expect(ms).toBeLessThan(1000);
  });

  it('refuses 20,000 unknown keys quickly with one short line (the parser compared every key with every other)', () => {
    const f = file('keys.yaml', `name: x\n${Array.from({ length: 20_000 }, (_, i) => `k${i}: 1`).join('\n')}\n`);
    const { value, ms } = timed(() => readRawConfig(f));
    const msg = left(value).message;
    expect(msg).toMatch(new RegExp(`^${f}: holds more than ${MAX_CONFIG_ENTRIES} keys and list entries`));
    expect(msg).not.toContain('\n');
    expect(msg.length).toBeLessThan(300);
    expect(ms).toBeLessThan(2000);
  });

  it('names at most five unknown keys and counts the rest', () => {
    const o: Record<string, unknown> = { name: 'x' };
    for (let i = 0; i < 2000; i++) o[`k${i}`] = i;
    expect(left(decodeConfig(o, 'c')).message).toBe(
      "c: unknown keys 'k0', 'k1', 'k2', 'k3', 'k4' and 1995 more (check the spelling; see examples/configs/ for every key)",
    );
  });

  it('reads a config just under the limit in seconds, with a one-line answer', () => {
    const f = file('limit.yaml', `name: x\n${Array.from({ length: MAX_CONFIG_ENTRIES - 10 }, (_, i) => `k${i}: 1`).join('\n')}\n`);
    const { value, ms } = timed(() => readRawConfig(f));
    expect(left(value).message).toBe(
      `${f}: unknown keys 'k0', 'k1', 'k2', 'k3', 'k4' and ${MAX_CONFIG_ENTRIES - 15} more (check the spelling; see examples/configs/ for every key)`,
    );
    expect(ms).toBeLessThan(5000);
  });

  it('still refuses a key given twice, naming it and where', () => {
    const f = file('twice.yaml', 'name: x\nseed: 1\nseed: 2\n');
    expect(left(readRawConfig(f)).message).toBe(`${f}: not valid YAML: key 'seed' appears twice in one mapping (again at line 3, column 1): keep one`);
  });

  it('reads the same shipped config as before', () => {
    expect(right(readRawConfig(join(import.meta.dirname, '../../examples/configs/headline.yaml'))).name).toBe('headline');
  });
});

describe('config name', () => {
  it('refuses control characters, shown escaped on one line, before anything trains', () => {
    const msg = left(decodeConfig({ name: 'bell\u0007run' }, 'c')).message;
    expect(msg).toBe('c: invalid config: name: expected a string without control characters (tabs, newlines, escapes), got "bell\\u0007run"');
    expect(left(decodeConfig({ name: 'a\u2028b' }, 'c')).message).toMatch(/^c: invalid config: name: expected a string without control characters/);
  });

  it('accepts any printable name, Unicode included', () => {
    expect(right(decodeConfig({ name: 'réseau ≥ 2 — test' }, 'c')).name).toBe('réseau ≥ 2 — test');
  });
});
