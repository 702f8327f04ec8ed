// The cpu backend's one message type between the main thread and its worker,
// declared once for both sides (this file is plain JavaScript because the
// worker loads it directly; cpu-protocol.d.mts gives TypeScript its types).
//
// A job is written into a shared Int32Array, `[seq, done, job, ready, fields…]`:
// the main thread fills the fields, bumps `seq` and notifies; the worker runs
// the job's kernel with the fields in the order below (the kernel's parameter
// order) and stores `seq` into `done`. The worker sets `ready` once it runs: a
// Web Worker starts only when the thread that made it returns to its event
// loop, and until then the main thread runs every chunk itself. A job that throws in the worker sets `failed`
// before `done`, so the main thread never waits for a worker that died. Fields named in FLOAT_FIELDS travel as
// float32 through a Float32Array view of the same words.

/** Each job: the exported WebAssembly function it runs, and its parameters in order. */
export const JOBS = Object.freeze({
  gemm: Object.freeze({
    kernel: 'gemmChunks',
    fields: Object.freeze(['m', 'n', 'k', 'a', 'sai', 'sap', 'b', 'sbp', 'sbj', 'c', 'ldc', 'ap', 'bp', 'scratch', 'split', 'chunk', 'counter', 'parts']),
  }),
  momentum: Object.freeze({
    kernel: 'momentumChunks',
    fields: Object.freeze(['p', 'v', 'g', 'pOut', 'vOut', 'n', 'lr', 'gamma', 'l2', 'nesterov', 'chunk', 'counter']),
  }),
  chains: Object.freeze({
    kernel: 'chainChunks',
    fields: Object.freeze(['x', 'ct', 'mean', 'out', 'chains', 'C', 'S', 'steps', 'stride', 'mode', 'chunk', 'counter']),
  }),
  conv: Object.freeze({
    kernel: 'convChunks',
    fields: Object.freeze(['x', 'wp', 'offs', 'out', 'xp', 'N', 'C', 'H', 'W', 'pad', 'F', 'ckk', 'OH', 'OW', 'chunk', 'counter']),
  }),
  elements: Object.freeze({
    kernel: 'elementChunks',
    fields: Object.freeze(['op', 'a', 'b', 'out', 'n', 'chunk', 'counter']),
  }),
  pool: Object.freeze({
    kernel: 'poolChunks',
    fields: Object.freeze(['x', 'ct', 'out', 'planes', 'H', 'W', 'size', 'stride', 'OH', 'OW', 'grad', 'chunk', 'counter']),
  }),
  unroll: Object.freeze({
    kernel: 'unrollChunks',
    fields: Object.freeze([
      'mode',
      'x',
      'col',
      'bounds',
      'planeStep',
      'count',
      'C',
      'H',
      'W',
      'KH',
      'KW',
      'OH',
      'OW',
      'stride',
      'pad',
      'units',
      'chunk',
      'counter',
    ]),
  }),
  regroup: Object.freeze({
    kernel: 'regroupChunks',
    fields: Object.freeze(['nchw', 'mat', 'F', 'count', 'n0', 'ohw', 'toMatrix', 'chunk', 'counter']),
  }),
  rowSums: Object.freeze({
    kernel: 'rowSumsChunks',
    fields: Object.freeze(['x', 'ct', 'mean', 'inv', 'acc1', 'acc2', 'N', 'C', 'mode', 'chunk', 'counter']),
  }),
  applyRows: Object.freeze({
    kernel: 'applyRowsChunks',
    fields: Object.freeze(['x', 'ct', 'out', 'coefT', 'N', 'C', 'mode', 'chunk', 'counter']),
  }),
  apply: Object.freeze({
    kernel: 'applyChunks',
    fields: Object.freeze(['x', 'ct', 'out', 'coef', 'planes', 'C', 'S', 'mode', 'chunk', 'counter']),
  }),
  // A band of a product on the native BLAS (cpu/gemm.ts): the worker binds the library itself (koffi) and calls
  // cblas_sgemm on the memory at these byte offsets; ta, tb are 0 or 1, ld* the stored matrices' row lengths.
  sgemm: Object.freeze({
    kernel: 'sgemm',
    fields: Object.freeze(['ta', 'tb', 'm', 'n', 'k', 'a', 'lda', 'b', 'ldb', 'c', 'ldc']),
  }),
  // jit's fused chains (cpu/chains.ts): a module emitted at run time, its bytes at `bytes` in the shared
  // memory; the worker compiles it on first sight of `id` and calls its `chunks` with the fields after `length`.
  fused: Object.freeze({
    kernel: 'chunks',
    fields: Object.freeze([
      'id',
      'bytes',
      'length',
      'a0',
      'a1',
      'a2',
      'a3',
      'a4',
      'a5',
      'a6',
      'a7',
      's0',
      's1',
      's2',
      's3',
      's4',
      's5',
      's6',
      's7',
      'o0',
      'o1',
      'o2',
      'o3',
      'rows',
      'chunk',
      'counter',
      'acc',
      'inner',
      'mid',
    ]),
  }),
});

/** cblas_sgemm as koffi declares it, on both threads. */
export const SGEMM_SIGNATURE = 'void cblas_sgemm(int, int, int, int, int, int, float, float *, int, float *, int, float, float *, int)';

/** Fields carried as float32. */
export const FLOAT_FIELDS = Object.freeze(new Set(['lr', 'gamma', 'l2', 's0', 's1', 's2', 's3', 's4', 's5', 's6', 's7']));

/**
 * The JavaScript a fused chain's module imports (float64 in and out): the host
 * kernels' own expressions (kernels.ts), shared by both threads so they compute alike.
 */
export const CHAIN_IMPORTS = Object.freeze({
  exp: Math.exp,
  log: Math.log,
  tanh: Math.tanh,
  sin: Math.sin,
  cos: Math.cos,
  // Split by sign so exp never overflows, as kernels.ts's sigmoid.
  sigmoid: (x) => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x))),
  pow: (x, p) => x ** p,
});

const KINDS = Object.freeze(Object.keys(JOBS));
/** Words before the fields: seq, done, job, ready, failed. */
export const HEADER = 5;
/** Words of the control block. */
export const CTRL_WORDS = HEADER + Math.max(...KINDS.map((k) => JOBS[k].fields.length));
/** Slots of the header. */
export const SEQ = 0,
  DONE = 1,
  JOB = 2,
  READY = 3,
  /** Set by the worker when a job threw (it still stores `done`): the main thread redoes the work or reports it. */
  FAILED = 4;

/** Writes a job's fields (by name) into the control block; throws on a missing field. */
export const writeJob = (ints, floats, kind, args) => {
  const { fields } = JOBS[kind];
  ints[JOB] = KINDS.indexOf(kind);
  for (let i = 0; i < fields.length; i++) {
    const name = fields[i];
    const v = args[name];
    if (typeof v !== 'number') throw new TypeError(`cpu worker job '${kind}': field '${name}' is missing`);
    if (FLOAT_FIELDS.has(name)) floats[HEADER + i] = v;
    else ints[HEADER + i] = v;
  }
};

/** Reads the job in the control block: its kernel's name and its arguments in parameter order. */
export const readJob = (ints, floats) => {
  const kind = KINDS[ints[JOB]];
  const { kernel, fields } = JOBS[kind];
  return { kernel, args: fields.map((name, i) => (FLOAT_FIELDS.has(name) ? floats[HEADER + i] : ints[HEADER + i])) };
};
