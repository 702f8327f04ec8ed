/**
 * Layers as values: a layer is a pair of pure functions, `init(key) → params`
 * and `apply(params, x) → y`. Models are built by composing layers with
 * `sequential` (and `residual`); an MLP is one such composition. Parameters
 * form a plain tree that `valueAndGrad` differentiates directly.
 *
 * Two optional parts make training generic over models:
 * - `roles(params)`: what each leaf is (weight, bias, norm gain), in leaf
 *   order, so regularization selects leaves by role rather than by name;
 * - state: layers such as batchNorm carry running statistics as an explicit
 *   tree (`initState()`), read and returned by `forward` (never mutated), and
 *   saved with the model. `forward` also receives the mode (train or eval) and
 *   a `Key` (dropout), so runs stay deterministic.
 * A layer that has neither is just `{ describe, init, apply }`.
 */
import { add, gelu, type Key, leakyRelu, matmul, relu, reshape, sigmoid, softmax, tanh, type Tensor } from '../core/index.js';
import { ShapeError, showShape } from '../core/index.js';
import { initializers, type DenseParams, type Initializer, type InitName } from './init.js';
import { leaves, type Tree, type Treelike } from '../autodiff/index.js';

/** What a parameter is, for regularization: L2 and weight decay select leaves by role. */
export type Role = 'weight' | 'bias' | 'gain' | 'other';

/** The state of a layer without state. */
export type Stateless = readonly [];

/** What `forward` is given: the mode, randomness for dropout, and the layer's state. */
export interface ForwardContext<S> {
  /** Training mode: dropout drops, batchNorm uses (and updates) batch statistics. */
  readonly train: boolean;
  /** Randomness for this forward pass (dropout); required when `train` and the model drops. */
  readonly key: Key | undefined;
  readonly state: S;
}

/**
 * A layer as a value: `init(key)` makes its parameters, `apply(params, x, state)` computes its
 * output; layers declare their parameters' roles and may carry state (running statistics). Compose
 * with `sequential` and `residual`.
 */
export interface Layer<P extends Treelike<P>, S extends Treelike<S> = Stateless> {
  /** For printing a model. */
  readonly describe: string;
  /** Fresh parameters drawn from `key`. */
  init(key: Key): P;
  /** Inference (eval mode). A stateful layer uses `state`, by default its initial state. */
  apply(params: P, x: Tensor, state?: S): Tensor;
  /** Each leaf's role, in `leaves(params)` order. Default: rank ≥ 2 leaves are weights, the rest biases. */
  roles?(params: P): readonly Role[];
  /** Initial state (running statistics); absent for stateless layers. */
  initState?(): S;
  /** The full forward pass: output and next state. Absent: `apply` in either mode, state unchanged. */
  forward?(params: P, x: Tensor, ctx: ForwardContext<S>): { readonly y: Tensor; readonly state: S };
}

/** Any layer, for heterogeneous lists. */
// biome-ignore lint/suspicious/noExplicitAny: a Layer<P, S> takes and returns P, so Layer<unknown> accepts no real layer: any is the only "some layer"
export type AnyLayer = Layer<any, any>;

/** The parameter tree type of a layer. */
export type ParamsOf<L> = L extends Layer<infer P, infer _S> ? P : never;
/** The state tree type of a layer (its running statistics; `[]` for stateless layers). */
export type StateOf<L> = L extends Layer<infer _P, infer S> ? S : never;

/** A layer's initial state ([] for stateless layers). */
export const initialState = <P extends Treelike<P>, S extends Treelike<S>>(layer: Layer<P, S>): S =>
  layer.initState !== undefined ? layer.initState() : ([] as unknown as S);

/** Runs a layer's full forward pass (or `apply`, for layers without one). */
export const forwardOf = <P extends Treelike<P>, S extends Treelike<S>>(
  layer: Layer<P, S>,
  params: P,
  x: Tensor,
  ctx: ForwardContext<S>,
): { readonly y: Tensor; readonly state: S } =>
  layer.forward !== undefined ? layer.forward(params, x, ctx) : { y: layer.apply(params, x, ctx.state), state: ctx.state };

/** Default roles: matrices and kernels (rank ≥ 2) are weights, vectors and scalars biases. */
const defaultRoles = (params: Tree): Role[] => leaves(params).map((l) => (l.rank >= 2 ? 'weight' : 'bias'));

/** Each leaf's role, in leaf order: the layer's declaration, else by rank. */
export const rolesOf = <P extends Treelike<P>, S extends Treelike<S>>(layer: Layer<P, S>, params: P): readonly Role[] => {
  const r = layer.roles !== undefined ? layer.roles(params) : defaultRoles(params as Tree);
  const n = leaves(params).length;
  if (r.length !== n) throw new Error(`${layer.describe}: roles() gave ${r.length} roles for ${n} parameter tensors`);
  return r;
};

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
    roles: () => ['bias', 'weight'], // leaf order: keys sorted, b before w
  };
};

/** The MLP's hidden activations (what MLP configs name). */
export type ActivationName = 'tanh' | 'relu' | 'sigmoid' | 'identity';
/** Every activation layer. */
export type AnyActivationName = ActivationName | 'leakyRelu' | 'gelu';

const activationFns: { readonly [A in AnyActivationName | 'softmax']: (x: Tensor) => Tensor } = {
  tanh,
  relu,
  sigmoid,
  identity: (x) => x,
  leakyRelu: (x) => leakyRelu(x),
  gelu,
  softmax: (x) => softmax(x, -1),
};

/** An elementwise activation (or softmax over the last axis) as a layer. */
export const activation = (name: AnyActivationName | 'softmax'): Layer<NoParams> => {
  const f = activationFns[name];
  if (f === undefined) throw new Error(`unknown activation '${name}': choose one of ${Object.keys(activationFns).join(', ')}`);
  return { describe: name, init: () => [], apply: (_p, x) => f(x) };
};

/** Any function of the input as a layer without parameters (reshape, a fixed scaling…). */
export const lambda = (describe: string, f: (x: Tensor) => Tensor): Layer<NoParams> => ({ describe, init: () => [], apply: (_p, x) => f(x) });

/** Flattens every axis after the first: [batch, ...] → [batch, features]. */
export const flatten = (): Layer<NoParams> => lambda('flatten', (x) => reshape(x, [x.shape[0]!, -1]));

/**
 * Layers applied in order; parameters (and state) are the arrays of each
 * layer's. In training, layer i gets the key `key.fold(i)`.
 */
export const sequential = <Ls extends readonly AnyLayer[]>(
  ...layers: Ls
): Layer<{ readonly [I in keyof Ls]: ParamsOf<Ls[I]> }, { readonly [I in keyof Ls]: StateOf<Ls[I]> }> => {
  const stateful = layers.some((l) => l.initState !== undefined || l.forward !== undefined);
  type Ps = readonly Tree[];
  const run = (params: Ps, x: Tensor, ctx: ForwardContext<readonly Tree[]>) => {
    const states: Tree[] = [];
    let h = x;
    layers.forEach((l, i) => {
      const r = forwardOf(l, params[i]!, h, { train: ctx.train, key: ctx.key?.fold(String(i)), state: ctx.state[i]! });
      h = r.y;
      states.push(r.state);
    });
    return { y: h, state: states };
  };
  const initState = () => layers.map((l) => initialState(l));
  return {
    describe: layers.map((l) => l.describe).join(' → '),
    init: (key) => {
      const keys = key.split(layers.length);
      return layers.map((l, i) => l.init(keys[i]!)) as never;
    },
    apply: (params, x, state) =>
      stateful
        ? run(params as unknown as Ps, x, { train: false, key: undefined, state: (state ?? initState()) as unknown as Ps }).y
        : layers.reduce((h, l, i) => l.apply((params as unknown as Ps)[i]!, h), x),
    roles: (params) => layers.flatMap((l, i) => rolesOf(l, (params as unknown as Ps)[i]!)),
    ...(stateful
      ? {
          initState: initState as never,
          forward: (params, x, ctx) => run(params as unknown as Ps, x, ctx as unknown as ForwardContext<Ps>) as never,
        }
      : {}),
  };
};

/** x + f(x): a skip connection around a layer (or a sequence) that keeps the shape. */
export const residual = <P extends Treelike<P>, S extends Treelike<S>>(inner: Layer<P, S>): Layer<P, S> => {
  const check = (x: Tensor, y: Tensor) => {
    if (y.shape.join() !== x.shape.join()) {
      throw new ShapeError(
        `residual(${inner.describe}): the inner layers map ${showShape(x.shape)} to ${showShape(y.shape)}; a skip connection needs the same shape`,
      );
    }
    return add(x, y);
  };
  return {
    describe: `residual(${inner.describe})`,
    init: (key) => inner.init(key),
    apply: (p, x, s) => check(x, inner.apply(p, x, s)),
    roles: (p) => rolesOf(inner, p),
    ...(inner.initState !== undefined ? { initState: () => inner.initState!() } : {}),
    ...(inner.forward !== undefined
      ? {
          forward: (p: P, x: Tensor, ctx: ForwardContext<S>) => {
            const r = inner.forward!(p, x, ctx);
            return { y: check(x, r.y), state: r.state };
          },
        }
      : {}),
  };
};

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

/**
 * A model: a layer that computes outputs from inputs, and, when it was built
 * from data, the architecture that rebuilds it (what files and configs hold).
 * Layers written in code have no spec: pass the layer to `loadModel` instead.
 */
export interface Model<P extends Treelike<P> = MlpParams, S extends Treelike<S> = Stateless> {
  readonly spec: ModelArchitecture | undefined;
  readonly layer: Layer<P, S>;
}

/** Architectures as data: the MLP form, or any sequential composition (see spec.ts). */
export type ModelArchitecture = MlpSpec | import('./spec.js').SequentialSpec;

/**
 * An MLP of any depth from the same pieces: dense, activation, dense, …, dense.
 *
 * @example
 * const model = mlp([3072, 128, 20], { activation: 'relu' });
 * const params = model.layer.init(new Key(0));
 */
export const mlp = (sizes: readonly number[], opts: { activation?: ActivationName; init?: InitName } = {}): Model<MlpParams> & { readonly spec: MlpSpec } => {
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
    roles: (params) => params.flatMap(() => ['bias', 'weight'] as const),
  };
  return { spec, layer };
};

/** Number of trainable scalars of an MLP: Σ (nIn + 1)·nOut. The report's 3072→128→20 has 395,924. */
export const mlpParamCount = (sizes: readonly number[]): number => sizes.slice(1).reduce((n, out, i) => n + (sizes[i]! + 1) * out, 0);
