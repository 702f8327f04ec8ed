/**
 * Models as data: one io-ts-decoded architecture for sequential compositions,
 * what configs, checkpoints and model files hold. `buildModel` turns a spec
 * into a layer, inferring every layer's input size from the one before (so a
 * spec names only output sizes), and says which layer does not fit.
 *
 * @example
 * const spec: SequentialSpec = { kind: 'sequential', input: [3, 32, 32], layers: [
 *   { type: 'conv2d', filters: 8, kernel: 3, padding: 1 }, { type: 'relu' }, { type: 'maxPool2d', size: 2 },
 *   { type: 'flatten' }, { type: 'dense', units: 20 } ] };
 */
import * as E from 'fp-ts/lib/Either.js';
import * as t from 'io-ts';
import { leakyRelu as leakyReluOf, reshape } from '../core/index.js';
import { slidingOut } from '../core/internal.js';
import { activation, dense, flatten, lambda, mlp, mlpParamCount, residual, sequential, type AnyLayer, type Model, type ModelArchitecture } from './layers.js';
import { avgPool2dLayer, batchNorm, conv2dLayer, dropoutLayer, layerNorm, maxPool2dLayer } from './blocks.js';
import { describeErrors, InitC, MlpSpecC, PositiveInt, unknownKeys } from './codecs.js';

const NonNegInt = t.refinement(t.number, (n) => Number.isInteger(n) && n >= 0, 'NonNegativeInt');
const Rate = t.refinement(t.number, (n) => n >= 0 && n < 1, 'RateIn[0,1)');
const Pos = t.refinement(t.number, (n) => Number.isFinite(n) && n > 0, 'PositiveNumber');

const opt = <T extends t.Props, O extends t.Props>(req: T, optional: O) => t.exact(t.intersection([t.type(req), t.partial(optional)]));

/** One layer of a sequential spec. */
export type LayerSpec =
  /** `init` defaults to he-uniform. */
  | { readonly type: 'dense'; readonly units: number; readonly init?: t.TypeOf<typeof InitC> }
  | { readonly type: 'conv2d'; readonly filters: number; readonly kernel: number; readonly stride?: number; readonly padding?: number }
  | { readonly type: 'maxPool2d' | 'avgPool2d'; readonly size: number; readonly stride?: number }
  | { readonly type: 'flatten' }
  | { readonly type: 'reshape'; readonly shape: readonly number[] }
  | { readonly type: 'dropout'; readonly rate: number }
  | { readonly type: 'layerNorm'; readonly eps?: number }
  | { readonly type: 'batchNorm'; readonly momentum?: number; readonly eps?: number }
  | { readonly type: 'tanh' | 'relu' | 'gelu' | 'sigmoid' }
  | { readonly type: 'leakyRelu'; readonly alpha?: number }
  | { readonly type: 'residual'; readonly layers: readonly LayerSpec[] };

/** The io-ts codec of one layer of a sequential architecture (what configs and model files hold). */
export const LayerSpecC: t.Type<LayerSpec> = t.recursion(
  'LayerSpec',
  () =>
    t.union([
      opt({ type: t.literal('dense'), units: PositiveInt }, { init: InitC }),
      opt({ type: t.literal('conv2d'), filters: PositiveInt, kernel: PositiveInt }, { stride: PositiveInt, padding: NonNegInt }),
      opt({ type: t.keyof({ maxPool2d: null, avgPool2d: null }), size: PositiveInt }, { stride: PositiveInt }),
      t.exact(t.type({ type: t.literal('flatten') })),
      t.exact(t.type({ type: t.literal('reshape'), shape: t.array(PositiveInt) })),
      t.exact(t.type({ type: t.literal('dropout'), rate: Rate })),
      opt({ type: t.literal('layerNorm') }, { eps: Pos }),
      opt({ type: t.literal('batchNorm') }, { momentum: Rate, eps: Pos }),
      t.exact(t.type({ type: t.keyof({ tanh: null, relu: null, gelu: null, sigmoid: null }) })),
      opt({ type: t.literal('leakyRelu') }, { alpha: t.number }),
      t.exact(t.type({ type: t.literal('residual'), layers: t.array(LayerSpecC) })),
    ]) as unknown as t.Type<LayerSpec>,
);

/** The io-ts codec of a sequential architecture: one example's input shape and its layers. */
export const SequentialSpecC = t.exact(
  t.type({
    kind: t.literal('sequential'),
    /** The shape of one example (without the batch axis): [3072], or [3, 32, 32] for images. */
    input: t.array(PositiveInt),
    layers: t.array(LayerSpecC),
  }),
);

/** A sequential architecture; its type comes from the codec. */
export type SequentialSpec = t.TypeOf<typeof SequentialSpecC>;

/** Every architecture a file or config may hold. */
export const ModelSpecC = t.union([MlpSpecC, SequentialSpecC]);

/** A spec that cannot be built: names the layer (by position) and the shapes. */
export class SpecError extends Error {
  override readonly name = 'SpecError';
}

const product = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/**
 * Builds the layers of a spec from an example shape; returns the layer and
 * the output example shape, or the first problem.
 */
const buildLayers = (
  specs: readonly LayerSpec[],
  input: readonly number[],
  where: string,
): E.Either<SpecError, { layers: AnyLayer[]; out: number[]; params: number; state: number }> => {
  let shape = [...input];
  let params = 0, // parameters and state (running statistics), counted from shapes (nothing is allocated)
    state = 0;
  const layers: AnyLayer[] = [];
  for (let i = 0; i < specs.length; i++) {
    const s = specs[i]!;
    const at = `${where}layers[${i}] (${s.type})`;
    const fail = (why: string) => E.left(new SpecError(`${at}: ${why}`));
    switch (s.type) {
      case 'dense':
        if (shape.length !== 1) return fail(`takes vectors but gets examples of shape [${shape.join(', ')}]: put a flatten before it`);
        layers.push(dense(shape[0]!, s.units, s.init ?? 'he-uniform'));
        params += (shape[0]! + 1) * s.units;
        shape = [s.units];
        break;
      case 'conv2d': {
        if (shape.length !== 3) return fail(`takes images [channels, height, width] but gets [${shape.join(', ')}]: set input to [3, 32, 32] or add a reshape`);
        const [c, h, w] = shape as [number, number, number];
        const stride = s.stride ?? 1,
          padding = s.padding ?? 0;
        const oh = slidingOut(h, s.kernel, stride, padding),
          ow = slidingOut(w, s.kernel, stride, padding);
        if (oh < 1 || ow < 1) return fail(`a ${s.kernel}×${s.kernel} kernel does not fit ${h}×${w} images with padding ${padding}`);
        layers.push(conv2dLayer(c, s.filters, s.kernel, { stride, padding }));
        params += (c * s.kernel * s.kernel + 1) * s.filters;
        shape = [s.filters, oh, ow];
        break;
      }
      case 'maxPool2d':
      case 'avgPool2d': {
        if (shape.length !== 3) return fail(`takes images [channels, height, width] but gets [${shape.join(', ')}]`);
        const [c, h, w] = shape as [number, number, number];
        const stride = s.stride ?? s.size;
        if (s.size > h || s.size > w) return fail(`a ${s.size}×${s.size} window does not fit ${h}×${w} images`);
        layers.push(s.type === 'maxPool2d' ? maxPool2dLayer(s.size, stride) : avgPool2dLayer(s.size, stride));
        shape = [c, slidingOut(h, s.size, stride, 0), slidingOut(w, s.size, stride, 0)];
        break;
      }
      case 'flatten':
        layers.push(flatten());
        shape = [product(shape)];
        break;
      case 'reshape': {
        if (product(s.shape) !== product(shape)) return fail(`cannot reshape examples of shape [${shape.join(', ')}] to [${s.shape.join(', ')}]`);
        const target = [...s.shape];
        layers.push(lambda(`reshape([${target.join(', ')}])`, (x) => reshape(x, [x.shape[0]!, ...target])));
        shape = target;
        break;
      }
      case 'dropout':
        layers.push(dropoutLayer(s.rate));
        break;
      case 'layerNorm':
        layers.push(layerNorm(shape[shape.length - 1]!, s.eps));
        params += 2 * shape[shape.length - 1]!;
        break;
      case 'batchNorm':
        if (shape.length !== 1 && shape.length !== 3) return fail(`takes vectors or images, not examples of shape [${shape.join(', ')}]`);
        layers.push(batchNorm(shape[0]!, { ...(s.momentum !== undefined ? { momentum: s.momentum } : {}), ...(s.eps !== undefined ? { eps: s.eps } : {}) }));
        params += 4 * shape[0]!; // gain, bias, and the running mean and variance
        state += 2 * shape[0]!;
        break;
      case 'tanh':
      case 'relu':
      case 'gelu':
      case 'sigmoid':
        layers.push(activation(s.type));
        break;
      case 'leakyRelu': {
        const alpha = s.alpha ?? 0.01;
        layers.push(alpha === 0.01 ? activation('leakyRelu') : lambda(`leakyRelu(${alpha})`, (x) => leakyReluOf(x, alpha)));
        break;
      }
      case 'residual': {
        const inner = buildLayers(s.layers, shape, `${at}.`);
        if (E.isLeft(inner)) return inner;
        if (inner.right.out.join() !== shape.join())
          return fail(`its layers map [${shape.join(', ')}] to [${inner.right.out.join(', ')}]; a skip connection needs the same shape`);
        layers.push(residual(sequential(...inner.right.layers)));
        params += inner.right.params;
        state += inner.right.state;
        break;
      }
    }
  }
  return E.right({ layers, out: shape, params, state });
};

/** The output shape of one example under a sequential spec, or why it does not build. */
export const outputShape = (spec: SequentialSpec): E.Either<SpecError, number[]> =>
  E.map((r: { out: number[] }) => r.out)(buildLayers(spec.layers, spec.input, ''));

/**
 * How many scalars (parameters and layer state) an architecture holds, from its
 * shapes alone: nothing is allocated, so a file or config with absurd widths can
 * be refused before it costs memory.
 */
export const architectureParamCount = (spec: ModelArchitecture): E.Either<SpecError, number> => {
  if (spec.kind === 'mlp') {
    if (spec.sizes.length < 2) return E.left(new SpecError(`architecture.sizes ${JSON.stringify(spec.sizes)} needs at least an input and an output width`));
    return E.right(mlpParamCount(spec.sizes));
  }
  return E.map((r: { params: number }) => r.params)(buildLayers(spec.layers, spec.input, ''));
};

/** How many of those scalars are layer state (batch normalization's running statistics). */
export const architectureStateCount = (spec: ModelArchitecture): E.Either<SpecError, number> =>
  spec.kind === 'mlp' ? E.right(0) : E.map((r: { state: number }) => r.state)(buildLayers(spec.layers, spec.input, ''));

/** A model built from an architecture spec (its parameter and state types are known only at run time). */
// biome-ignore lint/suspicious/noExplicitAny: the tree types are known only at run time, and Model<unknown> accepts no real model (see AnyLayer)
export type SpecModel = Model<any, any>;

/**
 * The model an architecture describes: an MLP, or a sequential composition
 * whose first step reshapes flat rows ([batch, Π input]) to the input shape.
 * The spec is decoded first, so an untyped one (parsed JSON, a plain object
 * cast to the type) with an unknown layer type (`conv2D`) or key (`filtres`)
 * is a `Left` naming it, never a layer silently dropped or sized NaN.
 */
export const buildModel = (spec: ModelArchitecture): E.Either<SpecError, SpecModel> => {
  const d = ModelSpecC.decode(spec);
  if (E.isLeft(d)) return E.left(new SpecError(`invalid model architecture:\n${describeErrors(d.left)}`));
  const stray = unknownKeys(spec, d.right);
  if (stray.length > 0)
    return E.left(
      new SpecError(
        `invalid model architecture: unknown key${stray.length > 1 ? 's' : ''} ${stray
          .slice(0, 5)
          .map((k) => `'${k}'`)
          .join(', ')}${stray.length > 5 ? ` and ${stray.length - 5} more` : ''} (check the spelling)`,
      ),
    );
  const arch = d.right as ModelArchitecture;
  if (arch.kind === 'mlp') return E.right(mlp(arch.sizes, { activation: arch.activation, init: arch.init }));
  const built = buildLayers(arch.layers, arch.input, '');
  if (E.isLeft(built)) return built;
  const input = [...arch.input];
  const layers =
    input.length === 1 ? built.right.layers : [lambda(`reshape([${input.join(', ')}])`, (x) => reshape(x, [x.shape[0]!, ...input])), ...built.right.layers];
  return E.right({ spec: arch, layer: sequential(...layers) });
};

/** Decodes and builds an architecture from untrusted data (a file, a config): `buildModel` for values of unknown type. */
export const decodeModel = (value: unknown): E.Either<SpecError, SpecModel> => buildModel(value as ModelArchitecture);

/** Rebuilds a model from its spec (e.g. after loading); throws SpecError on a spec that does not build. */
export const modelFromSpec = (spec: ModelArchitecture): SpecModel => {
  const m = buildModel(spec);
  if (E.isLeft(m)) throw m.left;
  return m.right;
};
