/**
 * Finding, reading and preparing CIFAR-100 in one call.
 *
 * Where the data comes from, in order: an explicit folder (`--data DIR`), the
 * `CIFAR100_DIR` environment variable, `./data/cifar-100-binary`; when none
 * holds it, `ensureCifar100` downloads the official archive into `./data`.
 */
import * as E from 'fp-ts/lib/Either.js';
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { Key, type BackendLike } from '../core/index.js';
import { DataError, readCifar100, readLabelNames, type LabelKind, type CifarSplit } from './cifar.js';
import { downloadCifar100, type DownloadOptions } from './download.js';
import { channelStats, cifarSet, trainValSplit, type LabeledSet, type Normalization } from './preprocess.js';

/**
 * Where the data is looked for (and downloaded to) when neither `--data` nor `CIFAR100_DIR` says:
 * `./data/cifar-100-binary`.
 */
export const DEFAULT_DATA_DIR = join('data', 'cifar-100-binary');

/** The folder the data is read from, and which of `--data`, `CIFAR100_DIR` or the default named it. */
export interface DataLocation {
  readonly dir: string;
  readonly source: 'flag' | 'env' | 'default';
}

/** The first candidate folder, in precedence order, with its source; its presence is not checked. */
export const locateDataDir = (flag?: string, env: Readonly<Record<string, string | undefined>> = process.env): DataLocation => {
  if (flag !== undefined && flag !== '') return { dir: resolve(flag), source: 'flag' };
  const fromEnv = env['CIFAR100_DIR'];
  if (fromEnv !== undefined && fromEnv !== '') return { dir: resolve(fromEnv), source: 'env' };
  return { dir: resolve(DEFAULT_DATA_DIR), source: 'default' };
};

/**
 * A folder holding train.bin and test.bin: the located one, or, when the default
 * location is empty, a fresh download into it. An explicit folder that lacks the
 * files is an error (downloading somewhere the user did not expect would surprise).
 */
export const ensureCifar100 = async (flag?: string, download: Omit<DownloadOptions, 'destDir'> = {}): Promise<E.Either<DataError, string>> => {
  const loc = locateDataDir(flag);
  const unreadable = folderProblem(loc);
  if (unreadable !== undefined) return E.left(unreadable);
  if (existsSync(join(loc.dir, 'train.bin'))) return E.right(loc.dir);
  if (loc.source !== 'default') {
    return E.left(
      new DataError(
        `no train.bin here (folder given by ${loc.source === 'flag' ? '--data' : 'CIFAR100_DIR'})`,
        loc.dir,
        'Point it at the folder that holds train.bin and test.bin, or leave it unset to download into ./data.',
      ),
    );
  }
  return downloadCifar100({ ...download, destDir: resolve(loc.dir, '..') });
};

/** Which flag or variable named a folder, for messages. */
const named = (loc: DataLocation): string => (loc.source === 'flag' ? '--data' : loc.source === 'env' ? 'CIFAR100_DIR' : 'the default location');

/**
 * Why the located folder cannot be looked into (permission denied, a file in
 * its path), or undefined when it can, or does not exist: a folder that cannot
 * be read is reported as such, not as one without train.bin.
 */
const folderProblem = (loc: DataLocation): DataError | undefined => {
  try {
    if (!statSync(loc.dir).isDirectory())
      return new DataError(`is a file, not a folder (given by ${named(loc)})`, loc.dir, 'Point it at the folder that holds train.bin and test.bin.');
    accessSync(loc.dir, constants.R_OK | constants.X_OK);
    return undefined;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    const why =
      code === 'EACCES' || code === 'EPERM' ? 'permission denied' : code === 'ENOTDIR' ? 'a part of this path is a file, not a folder' : (e as Error).message;
    return new DataError(`cannot be read (${why}; folder given by ${named(loc)})`, loc.dir, 'Fix its permissions, or point --data at a folder you can read.');
  }
};

/**
 * `tapegrad download`: makes the located folder (`--data DIR`, else
 * CIFAR100_DIR, else ./data/cifar-100-binary) hold CIFAR-100, downloading the
 * official archive into it unless it already holds train.bin. Resolves to the
 * folder, which `--data` then takes as it is.
 */
export const downloadCifar100Into = async (flag?: string, download: Omit<DownloadOptions, 'destDir' | 'folder'> = {}): Promise<E.Either<DataError, string>> => {
  const loc = locateDataDir(flag);
  const unreadable = folderProblem(loc);
  if (unreadable !== undefined) return E.left(unreadable);
  return downloadCifar100({ ...download, destDir: dirname(loc.dir), folder: basename(loc.dir) });
};

/**
 * What `loadCifar100` loads: labels (coarse or fine), normalization, the seeded train/validation
 * split, slices for quick runs, and the backend the sets' matrices live on.
 */
export interface LoadOptions {
  readonly dir: string;
  readonly labels: LabelKind;
  readonly normalization: Normalization;
  /** Seeds the train/validation split. */
  readonly seed: number;
  readonly trainFraction?: number;
  readonly stratify?: boolean;
  /** Use only the first N training / test images (for quick runs and tests). */
  readonly limitTrain?: number;
  readonly limitTest?: number;
  /** Build the normalized float32 matrices once (default) or normalize per batch (less memory). */
  readonly materialize?: boolean;
  /** Where the sets' matrices live (default: the default backend). */
  readonly backend?: BackendLike;
}

/** A loaded CIFAR-100: the training, validation and test sets, the label names, and the split used. */
export interface CifarData {
  readonly train: LabeledSet;
  readonly val: LabeledSet;
  readonly test: LabeledSet;
  readonly labelNames: readonly string[];
  /** Indices into train.bin of the training and validation images. */
  readonly split: { readonly train: Int32Array; readonly val: Int32Array };
}

const firstN = (split: CifarSplit, limit: number | undefined): Int32Array => Int32Array.from({ length: Math.min(split.n, limit ?? split.n) }, (_, i) => i);

/** Reads and splits (seeded) CIFAR-100 into train / validation / test sets that normalize as they are read. */
export const loadCifar100 = (opts: LoadOptions): E.Either<DataError, CifarData> => {
  const trainFile = readCifar100(opts.dir, 'train');
  if (E.isLeft(trainFile)) return trainFile;
  const testFile = readCifar100(opts.dir, 'test');
  if (E.isLeft(testFile)) return testFile;
  const names = readLabelNames(opts.dir, opts.labels);
  if (E.isLeft(names)) return names;
  const rows = firstN(trainFile.right, opts.limitTrain);
  const trainSplit = trainFile.right;
  const labelArr = opts.labels === 'coarse' ? trainSplit.coarse : trainSplit.fine;
  const cut = trainValSplit(rows.length, new Key(opts.seed).fold('split'), {
    trainFraction: opts.trainFraction ?? 0.8,
    ...(opts.stratify ? { stratifyBy: Uint8Array.from(rows, (r) => labelArr[r]!) } : {}),
  });
  const trainIdx = cut.train.map((i) => rows[i]!);
  const valIdx = cut.val.map((i) => rows[i]!);
  const stats = opts.normalization === 'per-dataset' ? channelStats(trainSplit, trainIdx) : undefined;
  const m = { materialize: opts.materialize ?? true, ...(opts.backend === undefined ? {} : { backend: opts.backend }) };
  return E.right({
    train: cifarSet(trainSplit, trainIdx, opts.labels, opts.normalization, stats, m),
    val: cifarSet(trainSplit, valIdx, opts.labels, opts.normalization, stats, m),
    test: cifarSet(testFile.right, firstN(testFile.right, opts.limitTest), opts.labels, opts.normalization, stats, m),
    labelNames: names.right,
    split: { train: trainIdx, val: valIdx },
  });
};
