// The webgpu backend's test cases in a browser (bundled by the browser test and run in a Web
// Worker of the cross-origin isolated demo page, so sync reads block on the executor as under
// Node): every kernel primitive against the float64 reference backend (both in this worker), and
// a small CNN trained 2 epochs on each, and a gather with a bad index. Posts the numbers back; the test judges them.
import { bind, createReferenceBackend, type KernelPrimitive, startWebgpu } from '../../src/core/index.js';
import { type Case, cases, putOn, relNorm, runCase, trainSmallCnn } from '../webgpu/cases.js';

declare const self: { onmessage: ((e: MessageEvent) => void) | null; postMessage(m: unknown): void };

/** One case's outcome: where the result lives, its shape against the reference's, and how far its values are. */
export interface CaseResult {
  readonly prim: string;
  readonly label: string;
  readonly backend: string;
  readonly shape: readonly number[];
  readonly wantShape: readonly number[];
  /** Exact cases: whether every value equals the reference's rounded to float32. */
  readonly exact?: boolean;
  readonly equal: boolean;
  readonly rel: number;
  readonly tol: number;
}

export interface WorkerReport {
  readonly description: string;
  readonly cases: readonly CaseResult[];
  readonly cnn: { readonly webgpu: ReturnType<typeof trainSmallCnn>; readonly reference: ReturnType<typeof trainSmallCnn> };
  readonly transfers: { readonly uploads: number; readonly downloads: number };
  /** What reading a gather with an index past the axis says (the device's check), and the values read after it. */
  readonly badIndex: { readonly message: string; readonly values: number[] };
}

self.onmessage = async () => {
  try {
    const gpu = await startWebgpu();
    const reference = createReferenceBackend();
    const out: CaseResult[] = [];
    for (const prim of Object.keys(cases) as KernelPrimitive[]) {
      for (const c of cases[prim] as readonly Case<KernelPrimitive>[]) {
        const { got, want } = runCase(gpu, reference, prim, c);
        const g = got.toTypedArray();
        const w = Array.from(want.toTypedArray(), Math.fround);
        out.push({
          prim,
          label: c.label,
          backend: got.backend.name,
          shape: got.shape,
          wantShape: want.shape,
          ...(c.exact === true ? { exact: true } : {}),
          equal: g.length === w.length && g.every((v, i) => Object.is(v, w[i]) || v === w[i]),
          rel: relNorm(g, want.toTypedArray()),
          tol: c.tol ?? 1e-5,
        });
        got.dispose();
        want.dispose();
      }
    }
    const put = putOn(gpu, 'float32');
    const bad = bind('gather', [put([1, 2, 3], [3]), put([2, 3, 0], [3])], { axis: 0 });
    let message = 'no error';
    try {
      bad.toTypedArray();
    } catch (e) {
      message = (e as Error).message;
    }
    const badIndex = { message, values: Array.from(bad.toTypedArray(), (v) => (Number.isNaN(v) ? -999 : v)) };
    const momentum = { kind: 'momentum', lr: 0.05, momentum: 0.9 } as const;
    const report: WorkerReport = {
      description: gpu.description,
      cases: out,
      cnn: { webgpu: trainSmallCnn(gpu, reference, momentum), reference: trainSmallCnn(reference, reference, momentum) },
      transfers: gpu.transfers(),
      badIndex,
    };
    self.postMessage(report);
  } catch (e) {
    self.postMessage({ error: e instanceof Error ? `${e.message}\n${e.stack ?? ''}` : String(e) });
  }
};
