/**
 * A system BLAS library, loaded at run time through koffi (an optional
 * dependency: a foreign-function interface shipped prebuilt inside its npm
 * package, no compiler at install). Its `cblas_sgemm` / `cblas_dgemm` read and
 * write the backend's Float32Array / Float64Array views in place: koffi hands
 * a typed array's own address to C, so operands in the shared WebAssembly
 * memory are not copied (test/core/cpu-native.test.ts checks the addresses).
 *
 * Which library: `TAPEGRAD_BLAS` (or the backend's `blas` option) is `auto`
 * (the default: the first candidate below that loads), `none` (the
 * WebAssembly kernels), a family name (`openblas`, `blis`, `mkl`,
 * `accelerate`: only that family's candidates), or a path to a library file.
 * Nothing here reads or changes other environment variables: OpenBLAS itself
 * reads OPENBLAS_CORETYPE and friends when it loads (see the README).
 */
import { SGEMM_SIGNATURE } from '../cpu-protocol.mjs';
import { envVar, isNode, nodeBuiltin } from '../platform.js';

/** The libraries looked for by name: OpenBLAS, BLIS, MKL, Apple Accelerate. */
export type BlasFamily = 'openblas' | 'blis' | 'mkl' | 'accelerate';

/** The library families tried, in order, and the file names each is known by. */
const CANDIDATES: Readonly<Record<BlasFamily, readonly string[]>> = {
  openblas: [
    'libopenblas.so.0',
    'libopenblas.so',
    'libopenblasp-r0.so',
    'libopenblas.dylib',
    '/opt/homebrew/opt/openblas/lib/libopenblas.dylib',
    'libopenblas.dll',
  ],
  blis: ['libblis.so.4', 'libblis.so', 'libblis-mt.so.4', 'libblis.dylib'],
  mkl: ['libmkl_rt.so.2', 'libmkl_rt.so', 'mkl_rt.2.dll', 'libmkl_rt.dylib'],
  accelerate: ['/System/Library/Frameworks/Accelerate.framework/Accelerate'],
};
/** What the `blas` option and TAPEGRAD_BLAS accept. */
export type BlasChoice = 'auto' | 'none' | BlasFamily | (string & {});

const CblasRowMajor = 101,
  CblasNoTrans = 111,
  CblasTrans = 112;

/** A loaded library: its GEMMs on typed arrays, row-major, C = op(A)·op(B). */
export interface NativeBlas {
  readonly family: BlasFamily | 'unknown';
  /** The file that loaded. */
  readonly file: string;
  /** Name, version and configuration as the library reports them, and the kernel it picked. */
  readonly summary: string;
  /** c (m×n) = op(a)·op(b) in float32, in place on the arrays' memory. */
  sgemm(m: number, n: number, k: number, a: Float32Array, transA: boolean, b: Float32Array, transB: boolean, c: Float32Array): void;
  /** The same with the stored matrices' row lengths given (a band of a larger product: lda, ldb, ldc). */
  sgemmBand(
    m: number,
    n: number,
    k: number,
    a: Float32Array,
    lda: number,
    transA: boolean,
    b: Float32Array,
    ldb: number,
    transB: boolean,
    c: Float32Array,
    ldc: number,
  ): void;
  /** What a worker thread needs to bind the same library itself: koffi's module file and the library's. */
  readonly binding: { readonly koffi: string; readonly file: string };
  /** c (m×n) = op(a)·op(b) in float64, in place on the arrays' memory. */
  dgemm(m: number, n: number, k: number, a: Float64Array, transA: boolean, b: Float64Array, transB: boolean, c: Float64Array): void;
  /** Sets the library's own thread count (process-wide for that library), when it is not already that. */
  useThreads(n: number): void;
  /** Whether `useThreads` can set it (OpenBLAS, BLIS, MKL; not Accelerate or an unknown file). */
  readonly threadsSettable: boolean;
}

/** The outcome of looking: a library, or why none (every file tried and its error). */
export type BlasLookup = { readonly blas: NativeBlas } | { readonly none: string };

interface KoffiLib {
  func(signature: string): (...args: unknown[]) => unknown;
}
interface Koffi {
  load(path: string): KoffiLib;
}

/** koffi and the file it loads from (a worker thread binding the library needs the path). */
const loadKoffi = (): { koffi: Koffi; path: string } | string => {
  if (!isNode()) return 'not Node';
  try {
    const req = nodeBuiltin<typeof import('node:module')>('node:module', 'loading koffi').createRequire(import.meta.url);
    return { koffi: req('koffi') as Koffi, path: req.resolve('koffi') };
  } catch (e) {
    return `koffi (an optional dependency) did not load: ${(e as Error).message.split('\n')[0]}`;
  }
};

/** Binds the library at `file`, or says why it cannot serve (no file, no cblas_sgemm). */
const bind = (koffi: Koffi, koffiPath: string, file: string, family: BlasFamily | 'unknown'): NativeBlas | string => {
  let lib: KoffiLib;
  try {
    lib = koffi.load(file);
  } catch (e) {
    return (e as Error).message.split('\n')[0]!;
  }
  const optional = (sig: string): ((...args: unknown[]) => unknown) | undefined => {
    try {
      return lib.func(sig);
    } catch {
      return undefined;
    }
  };
  const s = optional(SGEMM_SIGNATURE);
  const d = optional('void cblas_dgemm(int, int, int, int, int, int, double, double *, int, double *, int, double, double *, int)');
  if (s === undefined || d === undefined) return 'no cblas_sgemm / cblas_dgemm in it';
  // How each family names itself and sets its threads.
  const openblasConfig = optional('const char *openblas_get_config()');
  const blisVersion = optional('const char *bli_info_get_version_str()');
  const mklVersion = optional('void MKL_Get_Version_String(_Out_ char *buf, int len)');
  let name: BlasFamily | 'unknown' = family,
    summary = `${file} (no version query)`;
  let setThreads: ((n: number) => void) | undefined;
  if (openblasConfig !== undefined) {
    const core = optional('const char *openblas_get_corename()');
    const set = optional('void openblas_set_num_threads(int)');
    name = 'openblas';
    summary = `${openblasConfig() as string}; kernel ${core === undefined ? '?' : (core() as string)}`;
    if (set !== undefined) setThreads = (n) => void set(n);
  } else if (blisVersion !== undefined) {
    const archId = optional('int bli_arch_query_id()');
    const archName = optional('const char *bli_arch_string(int)');
    const set = optional('void bli_thread_set_num_threads(int64_t)');
    name = 'blis';
    summary = `BLIS ${blisVersion() as string}; kernel ${archId && archName ? (archName(archId()) as string) : '?'}`;
    if (set !== undefined) setThreads = (n) => void set(n);
  } else if (mklVersion !== undefined) {
    const buf = Buffer.alloc(256);
    mklVersion(buf, 256);
    const set = optional('void MKL_Set_Num_Threads(int)');
    name = 'mkl';
    summary = buf.toString('latin1').replace(/\0.*$/s, '').trim();
    if (set !== undefined) setThreads = (n) => void set(n);
  } else if (family === 'accelerate') {
    summary = 'Apple Accelerate (vecLib)';
  }
  let threads = -1;
  const t = (x: boolean) => (x ? CblasTrans : CblasNoTrans);
  return {
    family: name,
    file,
    summary,
    // Row-major with leading dimensions of the stored matrices: A is m×k (k×m when transposed), B k×n (n×k), C m×n.
    sgemm: (m, n, k, a, ta, b, tb, c) => void s(CblasRowMajor, t(ta), t(tb), m, n, k, 1, a, ta ? m : k, b, tb ? k : n, 0, c, n),
    sgemmBand: (m, n, k, a, lda, ta, b, ldb, tb, c, ldc) => void s(CblasRowMajor, t(ta), t(tb), m, n, k, 1, a, lda, b, ldb, 0, c, ldc),
    binding: { koffi: koffiPath, file },
    dgemm: (m, n, k, a, ta, b, tb, c) => void d(CblasRowMajor, t(ta), t(tb), m, n, k, 1, a, ta ? m : k, b, tb ? k : n, 0, c, n),
    threadsSettable: setThreads !== undefined,
    useThreads: (n) => {
      if (n !== threads && setThreads !== undefined) {
        setThreads(n);
        threads = n;
      }
    },
  };
};

const loaded = new Map<string, BlasLookup>();

/** The choice in force: the option, else TAPEGRAD_BLAS, else `auto`. */
export const blasChoice = (opt: BlasChoice | undefined): BlasChoice => {
  const env = envVar('TAPEGRAD_BLAS');
  return opt ?? (env === undefined || env === '' ? 'auto' : env);
};

/**
 * Finds and binds a BLAS library for `choice` (once per process and choice: a
 * library's state, its thread count included, is process-wide). `none` and
 * hosts without koffi give the reason instead.
 */
export const findBlas = (choice: BlasChoice): BlasLookup => {
  const hit = loaded.get(choice);
  if (hit !== undefined) return hit;
  const result = ((): BlasLookup => {
    if (choice === 'none') return { none: 'TAPEGRAD_BLAS=none' };
    const koffi = loadKoffi();
    if (typeof koffi === 'string') return { none: koffi };
    const families = Object.keys(CANDIDATES) as BlasFamily[];
    const tries: Array<[BlasFamily | 'unknown', string]> =
      choice === 'auto'
        ? families.flatMap((f) => CANDIDATES[f].map((file) => [f, file] as [BlasFamily, string]))
        : (families as string[]).includes(choice)
          ? CANDIDATES[choice as BlasFamily].map((file) => [choice as BlasFamily, file])
          : [['unknown', choice]];
    const errors: string[] = [];
    for (const [family, file] of tries) {
      const b = bind(koffi.koffi, koffi.path, file, family);
      if (typeof b !== 'string') return { blas: b };
      errors.push(b);
    }
    // The files tried, and the first one's error (the rest are mostly the same "cannot open").
    return { none: `no BLAS library loaded (TAPEGRAD_BLAS=${choice}; tried ${tries.map(([, f]) => f).join(', ')}: ${errors[0] ?? 'nothing to try'})` };
  })();
  loaded.set(choice, result);
  return result;
};
