// Types of cpu-protocol.mjs (see there).
export type GemmField =
  | 'm'
  | 'n'
  | 'k'
  | 'a'
  | 'sai'
  | 'sap'
  | 'b'
  | 'sbp'
  | 'sbj'
  | 'c'
  | 'ldc'
  | 'ap'
  | 'bp'
  | 'scratch'
  | 'split'
  | 'chunk'
  | 'counter'
  | 'parts';
export type MomentumField = 'p' | 'v' | 'g' | 'pOut' | 'vOut' | 'n' | 'lr' | 'gamma' | 'l2' | 'nesterov' | 'chunk' | 'counter';
export type ConvField = 'x' | 'wp' | 'offs' | 'out' | 'xp' | 'N' | 'C' | 'H' | 'W' | 'pad' | 'F' | 'ckk' | 'OH' | 'OW' | 'chunk' | 'counter';
export type ElementsField = 'op' | 'a' | 'b' | 'out' | 'n' | 'chunk' | 'counter';
export type PoolField = 'x' | 'ct' | 'out' | 'planes' | 'H' | 'W' | 'size' | 'stride' | 'OH' | 'OW' | 'grad' | 'chunk' | 'counter';
export type UnrollField =
  | 'mode'
  | 'x'
  | 'col'
  | 'bounds'
  | 'planeStep'
  | 'count'
  | 'C'
  | 'H'
  | 'W'
  | 'KH'
  | 'KW'
  | 'OH'
  | 'OW'
  | 'stride'
  | 'pad'
  | 'units'
  | 'chunk'
  | 'counter';
export type RegroupField = 'nchw' | 'mat' | 'F' | 'count' | 'n0' | 'ohw' | 'toMatrix' | 'chunk' | 'counter';
export type RowSumsField = 'x' | 'ct' | 'mean' | 'inv' | 'acc1' | 'acc2' | 'N' | 'C' | 'mode' | 'chunk' | 'counter';
export type ApplyRowsField = 'x' | 'ct' | 'out' | 'coefT' | 'N' | 'C' | 'mode' | 'chunk' | 'counter';
export type ApplyField = 'x' | 'ct' | 'out' | 'coef' | 'planes' | 'C' | 'S' | 'mode' | 'chunk' | 'counter';
export type ChainsField = 'x' | 'ct' | 'mean' | 'out' | 'chains' | 'C' | 'S' | 'steps' | 'stride' | 'mode' | 'chunk' | 'counter';
export type FusedField =
  | 'id'
  | 'bytes'
  | 'length'
  | 'a0'
  | 'a1'
  | 'a2'
  | 'a3'
  | 'a4'
  | 'a5'
  | 'a6'
  | 'a7'
  | 's0'
  | 's1'
  | 's2'
  | 's3'
  | 's4'
  | 's5'
  | 's6'
  | 's7'
  | 'o0'
  | 'o1'
  | 'o2'
  | 'o3'
  | 'rows'
  | 'chunk'
  | 'counter'
  | 'acc'
  | 'inner'
  | 'mid';
export type SgemmField = 'ta' | 'tb' | 'm' | 'n' | 'k' | 'a' | 'lda' | 'b' | 'ldb' | 'c' | 'ldc';
/** The one message type: a job and its named arguments. */
export type Job =
  | { readonly kind: 'gemm'; readonly args: Readonly<Record<GemmField, number>> }
  | { readonly kind: 'momentum'; readonly args: Readonly<Record<MomentumField, number>> }
  | { readonly kind: 'chains'; readonly args: Readonly<Record<ChainsField, number>> }
  | { readonly kind: 'apply'; readonly args: Readonly<Record<ApplyField, number>> }
  | { readonly kind: 'conv'; readonly args: Readonly<Record<ConvField, number>> }
  | { readonly kind: 'elements'; readonly args: Readonly<Record<ElementsField, number>> }
  | { readonly kind: 'pool'; readonly args: Readonly<Record<PoolField, number>> }
  | { readonly kind: 'unroll'; readonly args: Readonly<Record<UnrollField, number>> }
  | { readonly kind: 'regroup'; readonly args: Readonly<Record<RegroupField, number>> }
  | { readonly kind: 'rowSums'; readonly args: Readonly<Record<RowSumsField, number>> }
  | { readonly kind: 'applyRows'; readonly args: Readonly<Record<ApplyRowsField, number>> }
  | { readonly kind: 'sgemm'; readonly args: Readonly<Record<SgemmField, number>> }
  | { readonly kind: 'fused'; readonly args: Readonly<Record<FusedField, number>> };
export declare const JOBS: {
  readonly gemm: { readonly kernel: 'gemmChunks'; readonly fields: readonly GemmField[] };
  readonly momentum: { readonly kernel: 'momentumChunks'; readonly fields: readonly MomentumField[] };
  readonly chains: { readonly kernel: 'chainChunks'; readonly fields: readonly ChainsField[] };
  readonly apply: { readonly kernel: 'applyChunks'; readonly fields: readonly ApplyField[] };
  readonly conv: { readonly kernel: 'convChunks'; readonly fields: readonly ConvField[] };
  readonly elements: { readonly kernel: 'elementChunks'; readonly fields: readonly ElementsField[] };
  readonly pool: { readonly kernel: 'poolChunks'; readonly fields: readonly PoolField[] };
  readonly unroll: { readonly kernel: 'unrollChunks'; readonly fields: readonly UnrollField[] };
  readonly regroup: { readonly kernel: 'regroupChunks'; readonly fields: readonly RegroupField[] };
  readonly rowSums: { readonly kernel: 'rowSumsChunks'; readonly fields: readonly RowSumsField[] };
  readonly applyRows: { readonly kernel: 'applyRowsChunks'; readonly fields: readonly ApplyRowsField[] };
  readonly sgemm: { readonly kernel: 'sgemm'; readonly fields: readonly SgemmField[] };
  readonly fused: { readonly kernel: 'chunks'; readonly fields: readonly FusedField[] };
};
export declare const SGEMM_SIGNATURE: string;
export declare const CHAIN_IMPORTS: Readonly<Record<'exp' | 'log' | 'tanh' | 'sin' | 'cos' | 'sigmoid' | 'pow', (...x: number[]) => number>>;
export declare const FLOAT_FIELDS: ReadonlySet<string>;
export declare const HEADER: number;
export declare const CTRL_WORDS: number;
export declare const SEQ: number;
export declare const DONE: number;
export declare const JOB: number;
export declare const READY: number;
export declare const FAILED: number;
export declare function writeJob<J extends Job>(ints: Int32Array, floats: Float32Array, kind: J['kind'], args: J['args']): void;
export declare function readJob(ints: Int32Array, floats: Float32Array): { kernel: string; args: number[] };
