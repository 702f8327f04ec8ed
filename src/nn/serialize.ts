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
import { leaves, leafPaths, mapTree, type Treelike } from '../autodiff/index.js';
import { Key, Tensor } from '../core/index.js';
import { internal } from '../core/tensor.js';
import { makeShape, showShape, sizeOf } from '../core/shape.js';
import { describeErrors } from './codecs.js';
import { initialState, type Layer, type MlpParams, type Model, type ModelArchitecture, type Stateless } from './layers.js';
import { buildModel, ModelSpecC } from './spec.js';

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
/** A model whose layer was written in code: the file names it; `loadModel` needs the layer. */
const CodeArchitectureC = t.exact(t.type({ kind: t.literal('code'), describe: t.string }));

const ModelFileC = t.exact(t.intersection([
  t.type({
    format: t.literal(MODEL_FORMAT),
    version: t.literal(FORMAT_VERSION),
    architecture: t.union([ModelSpecC, CodeArchitectureC]),
    params: t.array(TensorC),
    extra: t.unknown,
  }),
  /** The layers' state (running statistics); absent for stateless models and in older files. */
  t.partial({ state: t.array(TensorC) }),
]));

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
  return E.right(internal.wrap(data, makeShape(enc.shape)));
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
export const encodeTree = <T extends Treelike<T>>(tree: T) => {
  const paths = leafPaths(tree);
  return leaves(tree).map((l, i) => encodeTensor(l, paths[i]!));
};

/** Fills the structure of `like` with the file's tensors, checking every shape. */
export const decodeTreeLike = <T extends Treelike<T>>(file: string, like: T, encoded: readonly t.TypeOf<typeof TensorC>[]): E.Either<ModelFileError, T> => {
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

/**
 * Saves a model's architecture (its spec, or the description of a layer
 * written in code), weights, the layers' state when it has any, and any
 * JSON-able extra (e.g. the training config).
 */
export const saveModel = <P extends Treelike<P>, S extends Treelike<S> = Stateless>(
  file: string, model: Model<P, S> | Layer<P, S>, params: P, extra: unknown = null, layerState?: S,
): void => {
  const spec = 'layer' in model ? model.spec : undefined;
  const layer = 'layer' in model ? model.layer : model;
  const state = layerState === undefined ? [] : encodeTree(layerState);
  writeFileAtomic(file, JSON.stringify({
    format: MODEL_FORMAT, version: FORMAT_VERSION, architecture: spec ?? { kind: 'code', describe: layer.describe },
    params: encodeTree(params), ...(state.length > 0 ? { state } : {}), extra,
  }));
};

export interface LoadedModel<P extends Treelike<P> = MlpParams, S extends Treelike<S> = Stateless> {
  readonly model: Model<P, S>;
  readonly params: P;
  /** The layers' state as saved (running statistics); the initial state when the file holds none. */
  readonly layerState: S;
  readonly extra: unknown;
}

/**
 * Loads what `saveModel` wrote; a truncated, corrupt or mismatched file gives a
 * `Left` saying which. A model built from a spec is rebuilt from the file; for
 * a layer written in code, pass that layer (its `init` gives the tree's shape).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function loadModel(file: string): E.Either<ModelFileError, LoadedModel<any, any>>;
export function loadModel<P extends Treelike<P>, S extends Treelike<S> = Stateless>(file: string, layer: Layer<P, S>): E.Either<ModelFileError, LoadedModel<P, S>>;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function loadModel(file: string, layer?: Layer<any, any>): E.Either<ModelFileError, LoadedModel<any, any>> {
  const json = readJson(file);
  if (E.isLeft(json)) return json;
  const obj = json.right as { format?: unknown; version?: unknown };
  if (obj?.format !== MODEL_FORMAT) return E.left(new ModelFileError(file, `is not a tapegrad model (format ${JSON.stringify(obj?.format)})`));
  if (obj.version !== FORMAT_VERSION) return E.left(new ModelFileError(file, `has format version ${JSON.stringify(obj.version)}; this tapegrad reads version ${FORMAT_VERSION}`));
  const decoded = ModelFileC.decode(json.right);
  if (E.isLeft(decoded)) return E.left(new ModelFileError(file, `does not match the model format:\n${describeErrors(decoded.left)}`));
  const arch = decoded.right.architecture;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  let model: Model<any, any>;
  if (layer !== undefined) {
    model = { spec: arch.kind === 'code' ? undefined : (arch as ModelArchitecture), layer };
  } else if (arch.kind === 'code') {
    return E.left(new ModelFileError(file, `holds a layer written in code (${arch.describe}): pass that layer, loadModel(file, layer)`));
  } else {
    const built = buildModel(arch as ModelArchitecture);
    if (E.isLeft(built)) return E.left(new ModelFileError(file, built.left.message));
    model = built.right;
  }
  const params = decodeTreeLike(file, model.layer.init(new Key(0)), decoded.right.params);
  if (E.isLeft(params)) return params;
  const stateLike = initialState(model.layer);
  const state = decoded.right.state === undefined ? E.right(stateLike) : decodeTreeLike(file, stateLike, decoded.right.state);
  if (E.isLeft(state)) return state;
  return E.right({ model, params: params.right, layerState: state.right, extra: decoded.right.extra });
}

const zerosShape = (shape: number[]): Tensor => internal.wrap(new Float32Array(sizeOf(shape)), makeShape(shape));
