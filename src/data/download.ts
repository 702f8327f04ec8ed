/**
 * The CIFAR-100 downloader: HTTP(S) with resume of a partial download (Range),
 * progress callbacks, sha256 verification of the archive, extraction with
 * node-tar into a temporary folder, verification of train.bin and test.bin, and
 * one rename into place. A failure at any step leaves no broken dataset behind:
 * only a `.part` file that the next run resumes from (or none, if it was corrupt).
 */
import * as E from 'fp-ts/lib/Either.js';
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import * as tar from 'tar';
import { CIFAR100_FILES, DataError } from './cifar.js';

/** Where the official CIFAR-100 binary archive is downloaded from. */
export const CIFAR100_URL = 'https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz';
/**
 * The SHA-256 of the official CIFAR-100 binary archive: a download is verified against it before
 * unpacking.
 */
export const CIFAR100_SHA256 = '58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec';
/** The folder name inside the archive. */
export const CIFAR100_FOLDER = 'cifar-100-binary';

/**
 * How `downloadCifar100` and `ensureCifar100` download: progress reports and where the archive
 * comes from.
 */
export interface DownloadOptions {
  /** Where `cifar-100-binary/` is created (e.g. `./data`). */
  readonly destDir: string;
  /** The dataset folder's name inside `destDir` (default `cifar-100-binary`, the archive's own). */
  readonly folder?: string;
  readonly url?: string;
  /** sha256 of the archive. */
  readonly sha256?: string;
  /** sha256 of each extracted file that must be checked. */
  readonly fileChecksums?: Readonly<Record<string, string>>;
  /** Called as bytes arrive (total when the server says it). */
  readonly onProgress?: (received: number, total: number | undefined) => void;
}

/** sha256 of a file, streamed. */
export const sha256File = async (file: string): Promise<string> => {
  const h = createHash('sha256');
  await pipeline(createReadStream(file), h);
  return h.digest('hex');
};

const defaultChecksums = Object.fromEntries(Object.values(CIFAR100_FILES).map((f) => [f.file, f.sha256]));

/**
 * Downloads and unpacks CIFAR-100 into `destDir/cifar-100-binary`, resuming a
 * partial download. Resolves to the dataset folder.
 */
export const downloadCifar100 = async (opts: DownloadOptions): Promise<E.Either<DataError, string>> => {
  const url = opts.url ?? CIFAR100_URL;
  const want = opts.sha256 ?? CIFAR100_SHA256;
  const checksums = opts.fileChecksums ?? defaultChecksums;
  const target = join(opts.destDir, opts.folder ?? CIFAR100_FOLDER);
  const part = join(opts.destDir, `${CIFAR100_FOLDER}.tar.gz.part`);
  if (existsSync(join(target, 'train.bin'))) return E.right(target);
  // An empty folder (made by the user to download into) is filled; one holding other files is not touched.
  if (existsSync(target) && readdirSync(target).length > 0) {
    return E.left(
      new DataError('holds other files but no train.bin', target, 'Download into a new or empty folder, or point --data at the folder that holds train.bin.'),
    );
  }
  mkdirSync(opts.destDir, { recursive: true });

  // 1. Fetch, resuming from whatever a previous attempt left.
  const start = existsSync(part) ? statSync(part).size : 0;
  let res: Response;
  try {
    res = await fetch(url, { headers: start > 0 ? { Range: `bytes=${start}-` } : {} });
  } catch (e) {
    return E.left(
      new DataError(
        `could not reach ${url} (${(e as Error).cause ?? (e as Error).message})`,
        url,
        'Check the network, or download cifar-100-binary.tar.gz elsewhere, unpack it and pass --data DIR (or set CIFAR100_DIR).',
      ),
    );
  }
  let append = false;
  if (res.status === 206) append = true;
  else if (res.status === 416 && start > 0)
    append = true; // the part file is already whole
  else if (res.status !== 200) {
    return E.left(
      new DataError(`the server answered HTTP ${res.status} ${res.statusText}`, url, 'Try again later, or download the archive by hand and pass --data DIR.'),
    );
  }
  if (res.status !== 416) {
    const total = res.headers.get('content-length');
    const totalBytes = total === null ? undefined : Number(total) + (append ? start : 0);
    let received = append ? start : 0;
    // Each chunk is written synchronously as it arrives: when the transfer breaks,
    // every byte received is already in the .part file for the next run to resume
    // from (a write stream destroyed by the error would drop what it still buffers).
    const fd = openSync(part, append ? 'a' : 'w');
    try {
      for await (const chunk of Readable.fromWeb(res.body as never) as AsyncIterable<Uint8Array>) {
        writeSync(fd, chunk);
        received += chunk.length;
        opts.onProgress?.(received, totalBytes);
      }
    } catch (e) {
      return E.left(
        new DataError(`the download broke off after ${received} bytes (${(e as Error).message})`, url, `Run the same command again: it resumes from ${part}.`),
      );
    } finally {
      closeSync(fd);
    }
  }

  // 2. Verify the archive.
  const got = await sha256File(part);
  if (got !== want) {
    rmSync(part, { force: true });
    return E.left(
      new DataError(
        `the archive's sha256 is ${got}, expected ${want}: the download is corrupt and was deleted`,
        url,
        'Run the command again to download it afresh.',
      ),
    );
  }

  // 3. Extract beside the target, verify, then move into place in one rename.
  const tmp = mkdtempSync(join(opts.destDir, '.extract-'));
  try {
    await tar.x({ file: part, cwd: tmp });
    const extracted = join(tmp, CIFAR100_FOLDER);
    for (const [file, sum] of Object.entries(checksums)) {
      const path = join(extracted, file);
      if (!existsSync(path)) {
        return E.left(new DataError(`the archive holds no ${CIFAR100_FOLDER}/${file}`, url, 'The archive is not the CIFAR-100 binary release; check --url.'));
      }
      const fileSum = await sha256File(path);
      if (fileSum !== sum) {
        rmSync(part, { force: true });
        return E.left(
          new DataError(`${file} in the archive has sha256 ${fileSum}, expected ${sum}`, url, 'The archive is corrupt and was deleted; run the command again.'),
        );
      }
    }
    renameSync(extracted, target);
    rmSync(part, { force: true });
    return E.right(target);
  } catch (e) {
    rmSync(part, { force: true });
    return E.left(new DataError(`could not unpack the archive (${(e as Error).message})`, part, 'It was deleted; run the command again.'));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
};
