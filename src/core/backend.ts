/**
 * The backend interface: the few kernels whose speed decides a training step's
 * speed. Everything else runs in plain TypeScript in `kernels.ts`.
 *
 * Backends sit side by side (`reference` here, `cpu` (WebAssembly SIMD) and
 * `gpujs` in their own files) and are chosen by name with `setBackend`, by the
 * `TAPEGRAD_BACKEND` environment variable, or by auto-detection.
 */
import type { Data } from './tensor.js';

/** The matrix-multiply contract every backend fulfils. */
export interface Backend {
  /** Short name used in configs and on the command line. */
  readonly name: string;
  /** One line for the start-up banner: what runs and on what. */
  readonly description: string;
  /**
   * `out[m×n] = op(a) · op(b)` with `op(a)` of shape m×k and `op(b)` k×n, row-major.
   * `transA` means `a` is stored k×m; `transB` means `b` is stored n×k.
   * `out` is freshly allocated by the caller, of the same dtype as `a` and `b`.
   */
  matmul(a: Data, b: Data, m: number, k: number, n: number, transA: boolean, transB: boolean, out: Data): void;
  /** Frees kernels, textures, workers. */
  dispose?(): void;
}

/**
 * The float64-accumulating reference: plain loops, the trusted path for tests and
 * gradcheck. Loop order keeps the innermost access contiguous for every transpose form.
 */
export const referenceBackend: Backend = {
  name: 'reference',
  description: 'reference: plain TypeScript loops (float64 accumulation); slow, exact',
  matmul(a, b, m, k, n, transA, transB, out) {
    if (!transB) {
      // Row i of C accumulates a[i,p] * row p of B: contiguous over j.
      const acc = new Float64Array(n);
      for (let i = 0; i < m; i++) {
        acc.fill(0);
        for (let p = 0; p < k; p++) {
          const aip = transA ? a[p * m + i]! : a[i * k + p]!;
          if (aip === 0) continue;
          const bo = p * n;
          for (let j = 0; j < n; j++) acc[j]! += aip * b[bo + j]!;
        }
        out.set(acc, i * n);
      }
    } else {
      // B stored n×k: C[i,j] is a dot product of two contiguous rows (when !transA).
      const col = new Float64Array(k);
      for (let i = 0; i < m; i++) {
        for (let p = 0; p < k; p++) col[p] = transA ? a[p * m + i]! : a[i * k + p]!;
        for (let j = 0; j < n; j++) {
          let s = 0;
          const bo = j * k;
          for (let p = 0; p < k; p++) s += col[p]! * b[bo + p]!;
          out[i * n + j] = s;
        }
      }
    }
  },
};

const registry = new Map<string, () => Backend>([['reference', () => referenceBackend]]);
let current: Backend = referenceBackend;

/** Makes a backend choosable by name (backends register themselves on import). */
export const registerBackend = (name: string, make: () => Backend): void => {
  registry.set(name, make);
};

/** Names that `setBackend` accepts. */
export const backendNames = (): string[] => [...registry.keys()];

/**
 * Selects the backend all matmuls run on from now on. Throws with the valid names
 * when `name` is unknown.
 */
export const setBackend = (name: string): Backend => {
  const make = registry.get(name);
  if (make === undefined) {
    throw new Error(`unknown backend '${name}': choose one of ${backendNames().join(', ')}`);
  }
  if (current.name !== name) {
    const next = make();
    current = next;
  }
  return current;
};

/** The backend in use. */
export const getBackend = (): Backend => current;

/** Runs `f` with another backend, restoring the previous one afterwards. */
export const withBackend = <A>(name: string, f: () => A): A => {
  const prev = current;
  setBackend(name);
  try {
    return f();
  } finally {
    current = prev;
  }
};
