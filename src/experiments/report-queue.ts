/**
 * `reproduce --queue`: a report's sweeps enqueued for `tapegrad worker`s.
 * Kept apart from reproduce.ts so that the queue (whose workers finish a
 * queued report with reproduce.ts) and the report do not import each other.
 */
import * as E from 'fp-ts/lib/Either.js';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { sealJson, writeFileAtomic } from '../nn/index.js';
import { configDiff } from './config.js';
import { enqueueSweep } from './queue.js';
import {
  finishQueuedReport,
  readQueuedReport,
  readSectionConfigs,
  REPORT_QUEUE_FILE,
  REPORT_QUEUE_FORMAT,
  SECTIONS,
  type ReproduceOptions,
  type Section,
} from './reproduce.js';
import { fsMessage } from './runfolder.js';

/**
 * `reproduce --queue`: every run of the chosen sections as jobs (queue.ts), in
 * `outDir/<section>`; queue.json records what was enqueued, so enqueueing again
 * with other settings is refused, and the worker that finishes the last
 * section's table writes report.md (finishQueuedReport).
 */
export const enqueueReport = async (
  outDir: string,
  queueUrl: string,
  opts: ReproduceOptions = {},
): Promise<E.Either<Error, { dir: string; sections: { section: Section; added: number; queued: number; finished: number; rows: number }[] }>> => {
  const dir = resolve(outDir);
  try {
    if (existsSync(dir) && !statSync(dir).isDirectory()) return E.left(new Error(`${dir} is a file, not a folder: choose another --out`));
    if (existsSync(join(dir, 'report.md'))) return E.left(new Error(`${dir} holds a finished report, which is never overwritten: choose another --out`));
    const foreign = existsSync(dir)
      ? readdirSync(dir).filter((f) => !(SECTIONS as readonly string[]).includes(f) && !f.startsWith('.') && f !== REPORT_QUEUE_FILE && !f.endsWith('.lock'))
      : [];
    if (foreign.length > 0)
      return E.left(
        new Error(
          `${dir} is not empty and is not a tapegrad report folder (it holds ${foreign.slice(0, 3).join(', ')}): choose a new or empty folder for --out`,
        ),
      );
    // The queue takes the tables' sweeps; the recipes (beyond) are single long runs, run where `reproduce --only beyond` is started.
    if (opts.only !== undefined && opts.only.length > 0 && opts.only.every((s) => s === 'beyond')) {
      return E.left(new Error("the beyond section's recipes are not queued: run them with `tapegrad reproduce --only beyond` (without --queue)"));
    }
    const sections = (opts.only ?? SECTIONS).filter((s) => s !== 'beyond');
    const configs = readSectionConfigs(sections, opts);
    if (E.isLeft(configs)) return configs;
    const record = { format: REPORT_QUEUE_FORMAT, sections, overrides: opts.overrides ?? {}, configs: Object.fromEntries(configs.right) };
    const file = join(dir, REPORT_QUEUE_FILE);
    if (existsSync(file)) {
      const stored = readQueuedReport(dir);
      if (E.isLeft(stored)) return stored;
      const { since: _s, ...kept } = stored.right;
      const diff = configDiff({ ...kept, format: REPORT_QUEUE_FORMAT }, record);
      if (diff.length > 0)
        return E.left(
          new Error(
            `${dir} holds a queued report of other settings (${diff.slice(0, 3).join('; ')}): enqueue it again with the same flags, or choose another --out`,
          ),
        );
    } else {
      mkdirSync(dir, { recursive: true });
      writeFileAtomic(file, sealJson({ ...record, since: new Date().toISOString() }, 2));
    }
    const out: { section: Section; added: number; queued: number; finished: number; rows: number }[] = [];
    for (const [section, cfg] of configs.right) {
      const r = await enqueueSweep(cfg, join(dir, section), queueUrl, opts.dataDir !== undefined ? { dataDir: opts.dataDir } : {});
      if (E.isLeft(r)) return E.left(new Error(`${section}: ${r.left.message}`));
      out.push({ section, added: r.right.added + r.right.retried, queued: r.right.queued, finished: r.right.finished, rows: r.right.rows });
    }
    // Only tables 1 and 2 (nothing to train), or every run already finished: the report now.
    const done = await finishQueuedReport(dir, opts.dataDir);
    if (E.isLeft(done)) return done;
    return E.right({ dir, sections: out });
  } catch (e) {
    return E.left(new Error((e as NodeJS.ErrnoException).code !== undefined ? fsMessage(e, dir) : (e as Error).message.split('\n')[0]!));
  }
};
