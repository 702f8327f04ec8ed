/**
 * The CIFAR-100 binary format: records of 3074 bytes (coarse label, fine label,
 * 1024 red, 1024 green, 1024 blue pixel bytes, each plane row-major 32×32).
 *
 * A split is held as the file's bytes plus two label arrays: no per-image
 * objects, no copy of the pixels. Every structural fault (size, label range,
 * class counts) is reported with the file, the byte offset and the fix.
 */
import * as E from 'fp-ts/lib/Either.js';
import { nodeBuiltin } from '../core/internal.js';

// Node's fs and path when reading files, not at import: the format's parser
// (parseCifar100) runs in browsers too, on bytes from a file input or fetch.
const fs = () => nodeBuiltin<typeof import('node:fs')>('node:fs', 'reading CIFAR-100 files (parseCifar100 takes bytes)');
const join = (...parts: string[]) => nodeBuiltin<typeof import('node:path')>('node:path', 'reading CIFAR-100 files').join(...parts);

/** Bytes per record: coarse label, fine label, 3072 pixel bytes. */
export const RECORD_BYTES = 3074;
/** Pixel bytes per image (3 channels × 32 × 32), the MLP's input width. */
export const PIXELS = 3072;
/** Pixels per channel plane (32 × 32). */
export const CHANNEL_PIXELS = 1024;
/** Superclasses (the coarse labels). */
export const COARSE_CLASSES = 20;
/** Classes (the fine labels). */
export const FINE_CLASSES = 100;

/** Label granularity: 20 superclasses or 100 classes. */
export type LabelKind = 'coarse' | 'fine';
/** The release's two files: train.bin (50,000 images) and test.bin (10,000). */
export type SplitName = 'train' | 'test';

/** Official sizes and checksums (of the CIFAR-100 release, https://www.cs.toronto.edu/~kriz/cifar.html). */
export const CIFAR100_FILES = {
  train: { file: 'train.bin', records: 50000, sha256: 'f31298fc616915fa142368359df1c4ca2ae984d6915ca468b998a5ec6aeebf29' },
  test: { file: 'test.bin', records: 10000, sha256: 'd8b1e6b7b3bee4020055f0699b111f60b1af1e262aeb93a0b659061746f8224a' },
} as const;

/** A problem with a dataset file, saying which file, where, and how to fix it. */
export class DataError extends Error {
  override readonly name = 'DataError';
  constructor(
    message: string,
    readonly file: string,
    readonly fix: string,
    readonly offset?: number,
  ) {
    super(`${file}${offset === undefined ? '' : ` (byte offset ${offset})`}: ${message}. ${fix}`);
  }
}

const REDOWNLOAD = 'Delete the file and download the dataset again (tapegrad download, or --data DIR pointing at a good copy).';

/** One split of CIFAR-100, as read from disk. */
export interface CifarSplit {
  readonly name: SplitName;
  readonly file: string;
  /** Number of images. */
  readonly n: number;
  /** The file's bytes; image i's pixels are `bytes[i*3074+2 .. i*3074+3074)`. */
  readonly bytes: Uint8Array;
  readonly coarse: Uint8Array;
  readonly fine: Uint8Array;
}

/** Byte offset of image i's first pixel within `bytes`. */
export const pixelOffset = (i: number): number => i * RECORD_BYTES + 2;

/** The labels of a split at the chosen granularity. */
export const labelsOf = (split: CifarSplit, kind: LabelKind): Uint8Array => (kind === 'coarse' ? split.coarse : split.fine);
/** 20 or 100. */
export const classCount = (kind: LabelKind): number => (kind === 'coarse' ? COARSE_CLASSES : FINE_CLASSES);

/** What `parseCifar100` and `readCifar100` demand of a file beyond its format. */
export interface ReadOptions {
  /** Demand the official record count (default true). */
  readonly expectOfficialSize?: boolean;
  /** Demand balanced classes as in the official release (default true when the size is official). */
  readonly checkClassCounts?: boolean;
}

/** Parses and validates the bytes of a CIFAR-100 binary file. */
export const parseCifar100 = (bytes: Uint8Array, name: SplitName, file: string, opts: ReadOptions = {}): E.Either<DataError, CifarSplit> => {
  const expected = CIFAR100_FILES[name].records;
  if (bytes.length === 0 || bytes.length % RECORD_BYTES !== 0) {
    const whole = Math.floor(bytes.length / RECORD_BYTES);
    return E.left(
      new DataError(
        `size ${bytes.length} bytes is not a whole number of ${RECORD_BYTES}-byte records ` +
          `(${whole} records and ${bytes.length - whole * RECORD_BYTES} stray bytes): the file is truncated or not CIFAR-100 binary`,
        file,
        REDOWNLOAD,
        whole * RECORD_BYTES,
      ),
    );
  }
  const n = bytes.length / RECORD_BYTES;
  if ((opts.expectOfficialSize ?? true) && n !== expected) {
    return E.left(new DataError(`holds ${n} records; the official ${CIFAR100_FILES[name].file} holds ${expected}`, file, REDOWNLOAD));
  }
  const coarse = new Uint8Array(n);
  const fine = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const o = i * RECORD_BYTES;
    const c = bytes[o]!,
      f = bytes[o + 1]!;
    if (c >= COARSE_CLASSES) return E.left(new DataError(`record ${i} has coarse label ${c}, outside 0..19: the file is corrupt`, file, REDOWNLOAD, o));
    if (f >= FINE_CLASSES) return E.left(new DataError(`record ${i} has fine label ${f}, outside 0..99: the file is corrupt`, file, REDOWNLOAD, o + 1));
    coarse[i] = c;
    fine[i] = f;
  }
  if (opts.checkClassCounts ?? n === expected) {
    const per = n / FINE_CLASSES;
    const counts = new Array<number>(FINE_CLASSES).fill(0);
    for (const f of fine) counts[f]!++;
    const bad = counts.findIndex((c) => c !== per);
    if (bad >= 0) return E.left(new DataError(`fine class ${bad} has ${counts[bad]} images, expected ${per}: the file is corrupt`, file, REDOWNLOAD));
  }
  return E.right({ name, file, n, bytes, coarse, fine });
};

/** Reads `train.bin` or `test.bin` from a directory. */
export const readCifar100 = (dir: string, name: SplitName, opts: ReadOptions = {}): E.Either<DataError, CifarSplit> => {
  const file = join(dir, CIFAR100_FILES[name].file);
  const { existsSync, statSync, readFileSync } = fs();
  if (!existsSync(file)) {
    return E.left(
      new DataError('file not found', file, `Point --data (or CIFAR100_DIR) at the folder holding train.bin and test.bin, or run 'tapegrad download'.`),
    );
  }
  if (!statSync(file).isFile()) return E.left(new DataError('is not a regular file', file, REDOWNLOAD));
  return parseCifar100(readFileSync(file), name, file, opts);
};

/** The class names (one per line in coarse_label_names.txt / fine_label_names.txt). */
export const readLabelNames = (dir: string, kind: LabelKind): E.Either<DataError, string[]> => {
  const file = join(dir, `${kind}_label_names.txt`);
  const { existsSync, readFileSync } = fs();
  if (!existsSync(file))
    return E.left(new DataError('file not found', file, 'Download the dataset again (tapegrad download), or point --data at a complete copy.'));
  const names = readFileSync(file, 'utf8')
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  const want = classCount(kind);
  return names.length === want ? E.right(names) : E.left(new DataError(`lists ${names.length} names, expected ${want}`, file, REDOWNLOAD));
};
