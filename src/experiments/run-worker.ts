/**
 * A worker thread of the run pool (parallel.ts): trains the runs it is sent, one
 * at a time, posting progress events and the result back.
 */
import * as E from 'fp-ts/lib/Either.js';
import { parentPort } from 'node:worker_threads';
import { disposeBackends } from '../core/index.js';
import type { CifarData } from '../data/index.js';
import type { FromWorker, ProgressEvent, ToWorker } from './parallel.js';
import { DivergedError, runExperiment } from './run.js';

if (parentPort === null) throw new Error('run-worker.ts runs as a worker thread of the run pool (parallel.ts)');
const port = parentPort;

/** Keeps the last data set only: runs of one sweep share it, and memory stays at one copy. */
class LastOnly<K, V> extends Map<K, V> {
  override set(key: K, value: V): this {
    if (!this.has(key)) this.clear();
    return super.set(key, value);
  }
}
const dataCache = new LastOnly<string, CifarData>();

let controller: AbortController | undefined;
let aborted = false;

const post = (m: FromWorker): void => port.postMessage(m);

port.on('message', (m: ToWorker) => {
  if (m.type === 'abort') {
    aborted = true;
    controller?.abort();
    return;
  }
  controller = new AbortController();
  if (aborted) controller.abort();
  const { id } = m;
  let lastBatchPost = 0;
  void runExperiment(
    m.config,
    {
      ...m.opts,
      ...(m.outDir !== undefined && m.resumeDir === undefined ? { outDir: m.outDir } : {}),
      dataCache,
      signal: controller.signal,
      onEvent: (e) => {
        let event: ProgressEvent = e;
        if (e.type === 'epoch') event = { type: 'epoch', record: e.record, improved: e.improved };
        else if (e.type === 'batch') {
          // A few updates a second are plenty for a progress line.
          const now = performance.now();
          if (now - lastBatchPost < 250 && e.batch !== e.batches) return;
          lastBatchPost = now;
        }
        post({ type: 'event', id, event });
      },
    },
    m.resumeDir,
  ).then(
    (r) =>
      post({
        type: 'done',
        id,
        result: E.isLeft(r)
          ? E.left({ message: r.left.message, ...(r.left instanceof DivergedError ? { diverged: { dir: r.left.dir, epoch: r.left.epoch } } : {}) })
          : r,
      }),
    // runExperiment returns its failures; this is only a last guard, and stays one line too.
    (err: unknown) => post({ type: 'done', id, result: E.left({ message: err instanceof Error ? err.message.split('\n')[0]! : String(err) }) }),
  );
});

process.on('exit', () => disposeBackends());
