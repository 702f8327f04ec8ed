/**
 * The downloader against a local HTTP server on 127.0.0.1 serving a tarball the
 * test builds itself: success, resume after a broken transfer, a corrupt archive.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadCifar100, downloadCifar100Into, ensureCifar100, CIFAR100_FOLDER } from '../../src/data/index.js';
import { left, right } from '../helpers.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

let archive: Buffer;
let checksums: Record<string, string>;
let server: Server;
let base: string;
/** How the server behaves on the next request. */
let mode: 'ok' | 'break-after-half' | 'corrupt' = 'ok';
const ranges: (string | undefined)[] = [];

beforeAll(async () => {
  const src = mkdtempSync(join(tmpdir(), 'tapegrad-src-'));
  const folder = join(src, CIFAR100_FOLDER);
  mkdirSync(folder);
  // Random-looking bytes that gzip cannot shrink much, so the transfer has some length.
  const train = Buffer.from(Array.from({ length: 3074 * 40 }, (_, i) => (i * 2654435761) >>> 24));
  const test = Buffer.from(Array.from({ length: 3074 * 8 }, (_, i) => ((i * 40503) >>> 8) & 255));
  writeFileSync(join(folder, 'train.bin'), train);
  writeFileSync(join(folder, 'test.bin'), test);
  writeFileSync(join(folder, 'coarse_label_names.txt'), 'a\nb\n');
  checksums = { 'train.bin': sha(train), 'test.bin': sha(test) };
  const tgz = join(src, 'a.tar.gz');
  await tar.c({ gzip: true, file: tgz, cwd: src }, [CIFAR100_FOLDER]);
  archive = readFileSync(tgz);

  server = createServer((req, res) => {
    ranges.push(req.headers.range);
    const m = /bytes=(\d+)-/.exec(req.headers.range ?? '');
    const from = m ? Number(m[1]) : 0;
    let body = archive.subarray(from);
    if (mode === 'corrupt') {
      body = Buffer.from(body);
      body[body.length >> 1] = body[body.length >> 1]! ^ 0xff;
    }
    res.writeHead(m ? 206 : 200, {
      'content-length': String(body.length),
      ...(m ? { 'content-range': `bytes ${from}-${archive.length - 1}/${archive.length}` } : {}),
    });
    if (mode === 'break-after-half') {
      mode = 'ok';
      res.write(body.subarray(0, body.length >> 1), () => res.destroy());
    } else {
      res.end(body);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/cifar.tar.gz`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('downloadCifar100', () => {
  it('downloads, verifies and unpacks, reporting progress', async () => {
    const dest = mkdtempSync(join(tmpdir(), 'tapegrad-dl-'));
    mode = 'ok';
    const seen: number[] = [];
    const dir = right(await downloadCifar100({ destDir: dest, url: base, sha256: sha(archive), fileChecksums: checksums, onProgress: (r) => seen.push(r) }));
    expect(dir).toBe(join(dest, CIFAR100_FOLDER));
    expect(sha(readFileSync(join(dir, 'train.bin')))).toBe(checksums['train.bin']);
    expect(seen[seen.length - 1]).toBe(archive.length);
    expect(readdirSync(dest)).toEqual([CIFAR100_FOLDER]); // no archive, part or temp folder left
  });

  it('resumes an interrupted transfer with a Range request', async () => {
    const dest = mkdtempSync(join(tmpdir(), 'tapegrad-dl-'));
    mode = 'break-after-half';
    ranges.length = 0;
    const opts = { destDir: dest, url: base, sha256: sha(archive), fileChecksums: checksums };
    const e = left(await downloadCifar100(opts));
    expect(e.message).toMatch(/broke off after \d+ bytes.*run the same command again: it resumes/i);
    expect(existsSync(join(dest, CIFAR100_FOLDER))).toBe(false);
    const dir = right(await downloadCifar100(opts));
    expect(ranges[0]).toBeUndefined();
    expect(ranges[1]).toMatch(/^bytes=[1-9]\d*-$/);
    expect(sha(readFileSync(join(dir, 'test.bin')))).toBe(checksums['test.bin']);
  });

  it('rejects a corrupt archive and leaves nothing broken behind', async () => {
    const dest = mkdtempSync(join(tmpdir(), 'tapegrad-dl-'));
    mode = 'corrupt';
    const e = left(await downloadCifar100({ destDir: dest, url: base, sha256: sha(archive), fileChecksums: checksums }));
    expect(e.message).toMatch(/sha256 is [0-9a-f]{64}, expected .*corrupt and was deleted/);
    expect(readdirSync(dest)).toEqual([]);
    mode = 'ok';
  });
});

describe('tapegrad download --data DIR (downloadCifar100Into)', () => {
  const opts = () => ({ url: base, sha256: sha(archive), fileChecksums: checksums });

  it('downloads into DIR itself, so that --data DIR then reads it; a second call downloads nothing', async () => {
    mode = 'ok';
    const parent = mkdtempSync(join(tmpdir(), 'tapegrad-dl-'));
    const dir = join(parent, 'my-cifar');
    expect(right(await downloadCifar100Into(dir, opts()))).toBe(dir);
    expect(sha(readFileSync(join(dir, 'train.bin')))).toBe(checksums['train.bin']);
    expect(readdirSync(parent)).toEqual(['my-cifar']);
    expect(right(await ensureCifar100(dir))).toBe(dir);
    ranges.length = 0;
    expect(right(await downloadCifar100Into(dir, opts()))).toBe(dir);
    expect(ranges).toEqual([]);
  });

  it('fills an empty folder made for it, and leaves a folder of other files alone', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'tapegrad-dl-'));
    expect(right(await downloadCifar100Into(empty, opts()))).toBe(empty);
    expect(existsSync(join(empty, 'test.bin'))).toBe(true);
    const other = mkdtempSync(join(tmpdir(), 'tapegrad-dl-'));
    writeFileSync(join(other, 'notes.txt'), 'mine');
    expect(left(await downloadCifar100Into(other, opts())).message).toBe(
      `${other}: holds other files but no train.bin. Download into a new or empty folder, or point --data at the folder that holds train.bin.`,
    );
    expect(readdirSync(other)).toEqual(['notes.txt']);
  });
});

describe('a data folder that cannot be read', () => {
  it('is reported as such, not as a folder without train.bin', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'tapegrad-dl-'));
    const file = join(parent, 'a-file');
    writeFileSync(file, '');
    expect(left(await ensureCifar100(join(file, 'data'))).message).toBe(
      `${join(file, 'data')}: cannot be read (a part of this path is a file, not a folder; folder given by --data). Fix its permissions, or point --data at a folder you can read.`,
    );
    expect(left(await ensureCifar100(file)).message).toBe(
      `${file}: is a file, not a folder (given by --data). Point it at the folder that holds train.bin and test.bin.`,
    );
  });
});
