/**
 * Saving and loading models and training checkpoints.
 *
 * Format: one JSON file, `format` + `version` first, the architecture, and every
 * tensor as shape + base64 of its little-endian float32 bytes, so a file is
 * self-contained and diff-able in its metadata. Decoded with io-ts on load and
 * checked against the architecture; written atomically (temporary file, fsync,
 * rename), so a crash never leaves half a file under the real name.
 *
 * Version 2 files are sealed: a `sha256` of the rest of the file's JSON, so a
 * flipped byte anywhere (a weight, a width, a history entry) is an error, never
 * different numbers. Version 1 files (no checksum) are still read.
 */
import * as E from 'fp-ts/lib/Either.js';
import * as t from 'io-ts';
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { leaves, leafPaths, mapTree, type Tree, type Treelike } from '../autodiff/index.js';
import { defaultBackend, Key, type Tensor } from '../core/index.js';
import { internal } from '../core/internal.js';
import { makeShape, showShape, sizeOf } from '../core/index.js';
import { describeErrors } from './codecs.js';
import { initialState, type Layer, type MlpParams, type Model, type ModelArchitecture, type Stateless } from './layers.js';
import { architectureParamCount, architectureStateCount, buildModel, ModelSpecC } from './spec.js';

/** The `format` tag of model files, checked before anything else is read. */
export const MODEL_FORMAT = 'tapegrad.model';
/** The version of the model file format this tapegrad writes (it reads this one and version 1). */
export const FORMAT_VERSION = 2;
/** Versions `loadModel` reads: 1 had no checksum. */
const READABLE_VERSIONS: readonly unknown[] = [1, 2];

/** A file that cannot be read as a tapegrad model, saying why and what to do. */
export class ModelFileError extends Error {
  override readonly name = 'ModelFileError';
  constructor(
    readonly file: string,
    problem: string,
  ) {
    super(`${file}: ${problem}`);
  }
}

const TensorC = t.exact(t.type({ path: t.string, shape: t.array(t.number), data: t.string }));
/** A model whose layer was written in code: the file names it; `loadModel` needs the layer. */
const CodeArchitectureC = t.exact(t.type({ kind: t.literal('code'), describe: t.string }));

const ModelFileC = t.exact(
  t.intersection([
    t.type({
      format: t.literal(MODEL_FORMAT),
      version: t.union([t.literal(1), t.literal(2)]),
      architecture: t.union([ModelSpecC, CodeArchitectureC]),
      params: t.array(TensorC),
      extra: t.unknown,
    }),
    /** The layers' state (running statistics); absent for stateless models and in older files. */
    t.partial({ state: t.array(TensorC) }),
  ]),
);

const encodeTensor = (tensor: Tensor, path: string) => {
  const f32 = tensor.dtype === 'float32' ? (internal.dataOf(tensor) as Float32Array) : Float32Array.from(internal.dataOf(tensor));
  return { path, shape: [...tensor.shape], data: Buffer.from(f32.buffer, f32.byteOffset, f32.byteLength).toString('base64') };
};

const decodeTensor = (file: string, enc: t.TypeOf<typeof TensorC>): E.Either<ModelFileError, Tensor> => {
  const bytes = Buffer.from(enc.data, 'base64');
  const n = sizeOf(enc.shape);
  if (bytes.length !== n * 4) {
    return E.left(
      new ModelFileError(
        file,
        `tensor ${enc.path} of shape ${showShape(enc.shape)} needs ${n * 4} bytes but holds ${bytes.length}: the file is corrupt; save the model again`,
      ),
    );
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

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/**
 * `value` as JSON with a `sha256` key over the rest (its compact JSON), so any
 * change to the content is detected on load while the file stays plain,
 * readable JSON. `space` pretty-prints (the checksum does not depend on it).
 */
export const sealJson = (value: Record<string, unknown>, space?: number): string =>
  JSON.stringify({ ...value, sha256: sha256(JSON.stringify(value)) }, null, space);

/** The checksum a JSON value would be sealed with (for files sealed elsewhere, e.g. a history beside its result). */
export const jsonChecksum = (value: unknown): string => sha256(JSON.stringify(value));

/**
 * Parses a sealed file's text and verifies its checksum; returns the value
 * without the `sha256` key. `required: false` accepts files written before
 * sealing (no `sha256` key at all). Problems come back as one-line `Left`s.
 */
export const unsealJson = (file: string, text: string, required = true): E.Either<ModelFileError, Record<string, unknown>> => {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    // The parser quotes the text it choked on, which may hold newlines or control bytes: keep the message one line.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the parser quotes control bytes, which are removed to keep the message one line
    const message = (e as Error).message.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ');
    return E.left(new ModelFileError(file, `is not valid JSON (${message}): the file is truncated or corrupt`));
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return E.left(new ModelFileError(file, 'does not hold a JSON object: the file is corrupt'));
  const { sha256: sum, ...rest } = v as Record<string, unknown>;
  if (sum === undefined && !required) return E.right(rest);
  if (typeof sum !== 'string') return E.left(new ModelFileError(file, 'has no checksum (sha256): the file is corrupt or was not written by tapegrad'));
  if (sum !== sha256(JSON.stringify(rest)))
    return E.left(new ModelFileError(file, 'fails its checksum: the file was changed or corrupted after it was written'));
  return E.right(rest);
};

/** The longest file `readText` reads: V8's longest string (2²⁹ − 24 characters on 64-bit Node). */
export const MAX_TEXT_BYTES = 2 ** 29 - 24;

/**
 * Reads a file as text; a missing, unreadable or too large file (over
 * `maxBytes`, checked before reading) is a `Left` naming it.
 */
export const readText = (file: string, maxBytes = MAX_TEXT_BYTES): E.Either<ModelFileError, string> => {
  try {
    const size = statSync(file).size;
    if (size > maxBytes) {
      return E.left(
        new ModelFileError(
          file,
          `is ${size} bytes, more than the ${maxBytes} tapegrad reads from one file${maxBytes === MAX_TEXT_BYTES ? " (a JavaScript string's limit)" : ''}: it is not a file tapegrad wrote, or is corrupt`,
        ),
      );
    }
    return E.right(readFileSync(file, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return E.left(
      new ModelFileError(
        file,
        code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied: fix its permissions' : `cannot be read (${(e as Error).message})`,
      ),
    );
  }
};

/** The first non-finite number of a tree's tensors, as `path[index] = value`, or undefined. */
export const firstNonFinite = (tree: Tree): string | undefined => {
  const paths = leafPaths(tree);
  const ls = leaves(tree);
  for (let i = 0; i < ls.length; i++) {
    const d = internal.dataOf(ls[i]!);
    for (let j = 0; j < d.length; j++) if (!Number.isFinite(d[j]!)) return `${paths[i]}[${j}] = ${d[j]}`;
  }
  return undefined;
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
    return E.left(
      new ModelFileError(file, `holds ${encoded.length} tensors but the architecture needs ${want.length}: the file does not belong to this model`),
    );
  }
  const out: Tensor[] = [];
  for (let i = 0; i < want.length; i++) {
    const enc = encoded[i]!;
    if (enc.shape.join() !== want[i]!.shape.join()) {
      return E.left(
        new ModelFileError(
          file,
          `tensor ${paths[i]} has shape ${showShape(enc.shape)} but the architecture needs ${showShape(want[i]!.shape)}: the file is corrupt`,
        ),
      );
    }
    const d = decodeTensor(file, enc);
    if (E.isLeft(d)) return d;
    out.push(d.right);
  }
  return E.right(mapTree(like, (_l, i) => out[i]!));
};

/**
 * Saves a model's architecture (its spec, or the description of a layer
 * written in code), weights, the layers' state when it has any, and any
 * JSON-able extra (e.g. the training config), sealed with a checksum.
 */
export const saveModel = <P extends Treelike<P>, S extends Treelike<S> = Stateless>(
  file: string,
  model: Model<P, S> | Layer<P, S>,
  params: P,
  extra: unknown = null,
  layerState?: S,
): void => {
  const spec = 'layer' in model ? model.spec : undefined;
  const layer = 'layer' in model ? model.layer : model;
  const state = layerState === undefined ? [] : encodeTree(layerState);
  writeFileAtomic(
    file,
    sealJson({
      format: MODEL_FORMAT,
      version: FORMAT_VERSION,
      architecture: spec ?? { kind: 'code', describe: layer.describe },
      params: encodeTree(params),
      ...(state.length > 0 ? { state } : {}),
      extra,
    }),
  );
};

/**
 * What `loadModel` returns: the model (rebuilt from its architecture, or the layer passed in), its
 * parameters and layer state, and the extra data saved with it.
 */
export interface LoadedModel<P extends Treelike<P> = MlpParams, S extends Treelike<S> = Stateless> {
  readonly model: Model<P, S>;
  readonly params: P;
  /** The layers' state as saved (running statistics); the initial state when the file holds none. */
  readonly layerState: S;
  readonly extra: unknown;
}

/**
 * The most scalars `loadModel` will allocate (2³⁰, 4 GiB of float32): a width
 * edited to 1e9 is refused before anything is allocated for it.
 */
export const MAX_MODEL_PARAMS = 2 ** 30;

/**
 * Loads what `saveModel` wrote. A missing, unreadable, truncated, corrupt
 * (checksum), mismatched or non-finite file gives a `Left` saying which and
 * what to do; it never throws. A model built from a spec is rebuilt from the
 * file; for a layer written in code, pass that layer (its `init` gives the
 * tree's shape).
 */
// biome-ignore lint/suspicious/noExplicitAny: a model rebuilt from a file has parameter types known only at run time (see AnyLayer)
export function loadModel(file: string): E.Either<ModelFileError, LoadedModel<any, any>>;
export function loadModel<P extends Treelike<P>, S extends Treelike<S> = Stateless>(
  file: string,
  layer: Layer<P, S>,
): E.Either<ModelFileError, LoadedModel<P, S>>;
// biome-ignore lint/suspicious/noExplicitAny: the implementation signature of the two overloads above
export function loadModel(file: string, layer?: Layer<any, any>): E.Either<ModelFileError, LoadedModel<any, any>> {
  try {
    return loadModelUnsafe(file, layer);
  } catch (e) {
    return E.left(new ModelFileError(file, `could not be loaded (${(e as Error).message}): the file is corrupt; save or train the model again`));
  }
}

// biome-ignore lint/suspicious/noExplicitAny: serves both overloads of loadModel (see AnyLayer)
const loadModelUnsafe = (file: string, layer: Layer<any, any> | undefined): E.Either<ModelFileError, LoadedModel<any, any>> => {
  const text = readText(file);
  if (E.isLeft(text)) return text;
  const json = unsealJson(file, text.right, false);
  if (E.isLeft(json)) return E.left(new ModelFileError(file, `${json.left.message.slice(file.length + 2)}; save or train the model again`));
  const obj = json.right;
  if (obj['format'] !== MODEL_FORMAT) return E.left(new ModelFileError(file, `is not a tapegrad model (format ${JSON.stringify(obj['format'])})`));
  if (!READABLE_VERSIONS.includes(obj['version']))
    return E.left(
      new ModelFileError(file, `has format version ${JSON.stringify(obj['version'])}; this tapegrad reads versions ${READABLE_VERSIONS.join(' and ')}`),
    );
  if (obj['version'] !== 1 && !('sha256' in JSON.parse(text.right)))
    return E.left(new ModelFileError(file, 'has no checksum (sha256), which version 2 files always have: the file is corrupt; save the model again'));
  // io-ts' exact types drop unknown keys silently; a stray key here means a damaged file (or a renamed checksum).
  const stray = Object.keys(obj).filter((k) => !['format', 'version', 'architecture', 'params', 'state', 'extra'].includes(k));
  if (stray.length > 0)
    return E.left(new ModelFileError(file, `has an unexpected key ${JSON.stringify(stray[0])}: the file is corrupt; save or train the model again`));
  const decoded = ModelFileC.decode(obj);
  if (E.isLeft(decoded)) return E.left(new ModelFileError(file, `does not match the model format: ${describeErrors(decoded.left)}`));
  const arch = decoded.right.architecture;
  // biome-ignore lint/suspicious/noExplicitAny: a model rebuilt from a file has parameter types known only at run time (see AnyLayer)
  let model: Model<any, any>;
  if (arch.kind === 'code' && layer === undefined) {
    return E.left(new ModelFileError(file, `holds a layer written in code (${arch.describe}): pass that layer, loadModel(file, layer)`));
  }
  if (arch.kind !== 'code') {
    // Sizes first, so nothing is allocated for an architecture edited to absurd widths.
    const count = architectureParamCount(arch as ModelArchitecture);
    if (E.isLeft(count)) return E.left(new ModelFileError(file, `${count.left.message}: the file is corrupt`));
    const what = arch.kind === 'mlp' ? `architecture.sizes ${JSON.stringify(arch.sizes)}` : 'its architecture';
    if (count.right > MAX_MODEL_PARAMS)
      return E.left(
        new ModelFileError(
          file,
          `${what} means ${count.right.toExponential(2)} weights, more than the ${MAX_MODEL_PARAMS} tapegrad loads: the file is corrupt`,
        ),
      );
  }
  // Byte counts before decoding: a tensor must hold exactly what its shape says.
  for (const e of [...decoded.right.params, ...(decoded.right.state ?? [])]) {
    const bytes = Buffer.byteLength(e.data, 'base64');
    if (bytes !== sizeOf(e.shape) * 4)
      return E.left(
        new ModelFileError(
          file,
          `tensor ${e.path} of shape ${showShape(e.shape)} needs ${sizeOf(e.shape) * 4} bytes but holds ${bytes}: the file is corrupt; save the model again`,
        ),
      );
  }
  if (arch.kind !== 'code') {
    // The architecture's weights against the file's, before `init` allocates the architecture's: a file
    // declaring a huge architecture beside small tensors is refused without allocating anything for it.
    // The count is of parameters and layer state (running statistics) together, as the file holds them; a file
    // saved without its state (older files) holds the parameters alone, and loads with the initial state.
    const declared = [...decoded.right.params, ...(decoded.right.state ?? [])].reduce((n, e) => n + sizeOf(e.shape), 0);
    const total = architectureParamCount(arch as ModelArchitecture),
      state = architectureStateCount(arch as ModelArchitecture);
    if (E.isRight(total) && E.isRight(state)) {
      const needed = decoded.right.state === undefined ? total.right - state.right : total.right;
      if (declared !== needed)
        return E.left(
          new ModelFileError(file, `holds ${declared} weights but its architecture needs ${needed}: the file is corrupt; save or train the model again`),
        );
    }
  }
  if (layer !== undefined) {
    model = { spec: arch.kind === 'code' ? undefined : (arch as ModelArchitecture), layer };
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
  const bad = firstNonFinite(params.right as Tree) ?? firstNonFinite(state.right as Tree);
  if (bad !== undefined)
    return E.left(
      new ModelFileError(file, `weight ${bad} is not finite: these weights cannot be used (the run diverged, or the file is corrupt); train the model again`),
    );
  return E.right({ model, params: params.right, layerState: state.right, extra: decoded.right.extra });
};
