/**
 * Layers as values: a layer is a pair of pure functions, `init(key) → params`
 * and `apply(params, x) → y`. Models are built by composing layers with
 * `sequential`; an MLP is nothing but dense layers and activations in sequence.
 * Parameters form a plain tree that `valueAndGrad` differentiates directly.
 */
import { add, Key, matmul, relu, sigmoid, softmax, tanh, Tensor } from '../core/index.js';
import { ShapeError, showShape } from '../core/shape.js';
import { initializers, type DenseParams, type Initializer, type InitName } from './init.js';
import type { Tree } from '../autodiff/index.js';

export interface Layer<P extends Tree> {
  /** For printing a model. */
  readonly describe: string;
  init(key: Key): P;
  apply(params: P, x: Tensor): Tensor;
}

/** A layer without parameters has an empty tuple. */
export type NoParams = readonly [];

/** Fully connected: x·W + b, with x of shape [batch, nIn]. */
export const dense = (nIn: number, nOut: number, init: Initializer | InitName = 'glorot-uniform'): Layer<DenseParams> => {
  const initFn = typeof init === 'string' ? initializers[init] : init;
  return {
    describe: `dense(${nIn} → ${nOut})`,
    init: (key) => initFn(key, nIn, nOut),
    apply: (p, x) => {
      if (x.rank !== 2 || x.shape[1] !== nIn) {
        throw new ShapeError(`dense(${nIn} → ${nOut}): input of shape ${showShape(x.shape)} should be [batch, ${nIn}]`);
      }
      return add(matmul(x, p.w), p.b);
    },
  };
};

export type ActivationName = 'tanh' | 'relu' | 'sigmoid' | 'identity';

const activationFns: { readonly [A in ActivationName | 'softmax']: (x: Tensor) => Tensor } = {
  tanh,
  relu,
  sigmoid,
  identity: (x) => x,
  softmax: (x) => softmax(x, -1),
};

/** An elementwise activation (or softmax over the last axis) as a layer. */
export const activation = (name: ActivationName | 'softmax'): Layer<NoParams> => {
  const f = activationFns[name];
  if (f === undefined) throw new Error(`unknown activation '${name}': choose one of ${Object.keys(activationFns).join(', ')}`);
  return { describe: name, init: () => [], apply: (_p, x) => f(x) };
};

type ParamsOf<L> = L extends Layer<infer P> ? P : never;

/** Layers applied in order; parameters are the array of each layer's parameters. */
export const sequential = <Ls extends readonly Layer<any>[]>(
  ...layers: Ls
): Layer<{ readonly [I in keyof Ls]: ParamsOf<Ls[I]> }> => ({
  describe: layers.map((l) => l.describe).join(' → '),
  init: (key) => {
    const keys = key.split(layers.length);
    return layers.map((l, i) => l.init(keys[i]!)) as never;
  },
  apply: (params, x) => layers.reduce((h, l, i) => l.apply((params as readonly Tree[])[i]!, h), x),
});

/** An MLP's architecture, as data (what configs and saved models hold). */
export interface MlpSpec {
  readonly kind: 'mlp';
  /** Layer widths, input first: [3072, 128, 20]. */
  readonly sizes: readonly number[];
  /** Hidden activation. The output layer gives logits (softmax lives in the loss). */
  readonly activation: ActivationName;
  readonly init: InitName;
}

/** MLP parameters: one `{ w, b }` per dense layer (activations hold none). */
export type MlpParams = readonly DenseParams[];

/** A model: an architecture, and the layer that computes logits from inputs. */
export interface Model {
  readonly spec: MlpSpec;
  readonly layer: Layer<MlpParams>;
}

/**
 * An MLP of any depth from the same pieces: dense, activation, dense, …, dense.
 *
 * @example
 * const model = mlp([3072, 128, 20], { activation: 'relu' });
 * const params = model.layer.init(new Key(0));
 */
export const mlp = (sizes: readonly number[], opts: { activation?: ActivationName; init?: InitName } = {}): Model => {
  if (sizes.length < 2 || sizes.some((s) => !Number.isInteger(s) || s < 1)) {
    throw new RangeError(`mlp: sizes must list at least an input and an output width, all positive integers; got [${sizes.join(', ')}]`);
  }
  const spec: MlpSpec = { kind: 'mlp', sizes: [...sizes], activation: opts.activation ?? 'relu', init: opts.init ?? 'he-uniform' };
  const denses = sizes.slice(1).map((out, i) => dense(sizes[i]!, out, spec.init));
  const act = activation(spec.activation);
  const layer: Layer<MlpParams> = {
    describe: `mlp(${denses.map((d) => d.describe).join(` → ${spec.activation} → `)})`,
    init: (key) => key.split(denses.length).map((k, i) => denses[i]!.init(k)),
    // dense → activation → … → dense: the activation between layers, none after the last.
    apply: (params, x) =>
      denses.reduce((h, d, i) => {
        const z = d.apply(params[i]!, h);
        return i < denses.length - 1 ? act.apply([], z) : z;
      }, x),
  };
  return { spec, layer };
};

/** Rebuilds a model from its spec (e.g. after loading). */
export const modelFromSpec = (spec: MlpSpec): Model => mlp(spec.sizes, { activation: spec.activation, init: spec.init });

/** Number of trainable scalars of an MLP: Σ (nIn + 1)·nOut. The report's 3072→128→20 has 395,924. */
export const mlpParamCount = (sizes: readonly number[]): number =>
  sizes.slice(1).reduce((n, out, i) => n + (sizes[i]! + 1) * out, 0);
