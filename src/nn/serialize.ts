/**
 * Saving and loading models and training checkpoints.
 *
 * Format: one JSON file, `format` + `version` first, the architecture, and every
 * tensor as shape + base64 of its little-endian float32 bytes, so a file is
 * self-contained and diff-able in its metadata. Decoded with io-ts on load and
 * checked against the architecture; written atomically (temporary file, fsync,
 * rename), so a crash never leaves half a file under the real name.
 */
import * as E from 'fp-ts/lib/Either.js';
import * as t from 'io-ts';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { leaves, leafPaths, mapTree, type Tree } from '../autodiff/index.js';
import { defaultBackend, Tensor } from '../core/index.js';
import { internal } from '../core/tensor.js';
import { makeShape, showShape, sizeOf } from '../core/shape.js';
import { describeErrors, MlpSpecC } from './codecs.js';
import { modelFromSpec, type MlpParams, type MlpSpec, type Model } from './layers.js';

export const MODEL_FORMAT = 'tapegrad.model';
export const FORMAT_VERSION = 1;

/** A file that cannot be read as a tapegrad model, saying why and what to do. */
export class ModelFileError extends Error {
  override readonly name = 'ModelFileError';
  constructor(readonly file: string, problem: string) {
    super(`${file}: ${problem}`);
  }
}

const TensorC = t.exact(t.type({ path: t.string, shape: t.array(t.number), data: t.string }));
const ModelFileC = t.exact(t.type({
  format: t.literal(MODEL_FORMAT),
  version: t.literal(FORMAT_VERSION),
  architecture: MlpSpecC,
  params: t.array(TensorC),
  extra: t.unknown,
}));

const encodeTensor = (tensor: Tensor, path: string) => {
  const f32 = tensor.dtype === 'float32' ? (internal.dataOf(tensor) as Float32Array) : Float32Array.from(internal.dataOf(tensor));
  return { path, shape: [...tensor.shape], data: Buffer.from(f32.buffer, f32.byteOffset, f32.byteLength).toString('base64') };
};

const decodeTensor = (file: string, enc: t.TypeOf<typeof TensorC>): E.Either<ModelFileError, Tensor> => {
  const bytes = Buffer.from(enc.data, 'base64');
  const n = sizeOf(enc.shape);
  if (bytes.length !== n * 4) {
    return E.left(new ModelFileError(file, `tensor ${enc.path} of shape ${showShape(enc.shape)} needs ${n * 4} bytes but holds ${bytes.length}: the file is corrupt; save the model again`));
  }
  const data = new Float32Array(n);
  new Uint8Array(data.buffer).set(bytes);
  return E.right(internal.adopt(data, makeShape(enc.shape), defaultBackend()));
};

/** Writes `text` to `file` atomically: a temporary file in the same folder, fsync, rename. */
export const writeFileAtomic = (file: string, text: string | Uint8Array): void => {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  try {
    const fd = openSync(tmp, 'w');
    try {
      const buf = typeof text === 'string' ? Buffer.from(text) : text;
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOSPC') throw new Error(`${file}: the disk is full; nothing was overwritten. Free some space and run again`);
    throw e;
  }
};

/** Tensors of a tree in the file's encoding. */
export const encodeTree = (tree: Tree) => {
  const paths = leafPaths(tree);
  return leaves(tree).map((l, i) => encodeTensor(l, paths[i]!));
};

/** Fills the structure of `like` with the file's tensors, checking every shape. */
export const decodeTreeLike = <T extends Tree>(file: string, like: T, encoded: readonly t.TypeOf<typeof TensorC>[]): E.Either<ModelFileError, T> => {
  const want = leaves(like);
  const paths = leafPaths(like);
  if (encoded.length !== want.length) {
    return E.left(new ModelFileError(file, `holds ${encoded.length} tensors but the architecture needs ${want.length}: the file does not belong to this model`));
  }
  const out: Tensor[] = [];
  for (let i = 0; i < want.length; i++) {
    const enc = encoded[i]!;
    if (enc.shape.join() !== want[i]!.shape.join()) {
      return E.left(new ModelFileError(file, `tensor ${paths[i]} has shape ${showShape(enc.shape)} but the architecture needs ${showShape(want[i]!.shape)}`));
    }
    const d = decodeTensor(file, enc);
    if (E.isLeft(d)) return d;
    out.push(d.right);
  }
  return E.right(mapTree(like, (_l, i) => out[i]!));
};

const readJson = (file: string): E.Either<ModelFileError, unknown> => {
  if (!existsSync(file)) return E.left(new ModelFileError(file, 'no such file'));
  const text = readFileSync(file, 'utf8');
  try {
    return E.right(JSON.parse(text));
  } catch (e) {
    return E.left(new ModelFileError(file, `is not valid JSON (${(e as Error).message}): the file is truncated or corrupt; save or train the model again`));
  }
};

/** Saves an MLP's architecture, weights and any JSON-able extra (e.g. the training config). */
export const saveModel = (file: string, model: Model, params: MlpParams, extra: unknown = null): void =>
  writeFileAtomic(file, JSON.stringify({ format: MODEL_FORMAT, version: FORMAT_VERSION, architecture: model.spec, params: encodeTree(params), extra }));

export interface LoadedModel {
  readonly model: Model;
  readonly params: MlpParams;
  readonly extra: unknown;
}

/** Loads what `saveModel` wrote; a truncated, corrupt or mismatched file gives a `Left` saying which. */
export const loadModel = (file: string): E.Either<ModelFileError, LoadedModel> => {
  const json = readJson(file);
  if (E.isLeft(json)) return json;
  const obj = json.right as { format?: unknown; version?: unknown };
  if (obj?.format !== MODEL_FORMAT) return E.left(new ModelFileError(file, `is not a tapegrad model (format ${JSON.stringify(obj?.format)})`));
  if (obj.version !== FORMAT_VERSION) return E.left(new ModelFileError(file, `has format version ${JSON.stringify(obj.version)}; this tapegrad reads version ${FORMAT_VERSION}`));
  const decoded = ModelFileC.decode(json.right);
  if (E.isLeft(decoded)) return E.left(new ModelFileError(file, `does not match the model format:\n${describeErrors(decoded.left)}`));
  const spec = decoded.right.architecture as MlpSpec;
  const model = modelFromSpec(spec);
  const like = spec.sizes.slice(1).map((out, i) => ({ w: zerosShape([spec.sizes[i]!, out]), b: zerosShape([out]) }));
  return E.map((params: MlpParams) => ({ model, params, extra: decoded.right.extra }))(decodeTreeLike(file, like as MlpParams, decoded.right.params));
};

const zerosShape = (shape: number[]): Tensor => internal.adopt(new Float32Array(sizeOf(shape)), makeShape(shape), defaultBackend());
