/**
 * Run folders that no two processes share and no run overwrites.
 *
 * - A new run's folder is created with a non-recursive `mkdir` (atomic: of two
 *   processes asking for the same name, one gets EEXIST) or is an existing
 *   empty folder; either way it is then claimed with a lock file created with
 *   `O_EXCL`, held for the run's whole life and removed when the run ends.
 * - A lock whose process is gone (SIGKILL, power loss) is stale: it is reported,
 *   and `run.json` is marked `killed` before anything else happens in the folder.
 * - Folder names built from config names are one path segment
 *   (`name: ../../tmp/evil` stays under `runs/`).
 *
 * Everything here returns `Either`; file-system errors (EACCES, ENOTDIR, ENOSPC)
 * become one-line messages naming the path.
 */
import * as E from 'fp-ts/lib/Either.js';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

/** What a lock file holds: who holds the folder, since when. */
export interface LockInfo {
  readonly pid: number;
  readonly host: string;
  readonly started: string;
}

/** A claimed folder; `release` removes the lock (idempotent). */
export interface RunLock {
  readonly dir: string;
  readonly file: string;
  /** Set when the folder's previous holder had died without releasing it. */
  readonly stale?: LockInfo;
  release(): void;
}

/** A run folder's files, by meaning. */
export const RUN_LOCK = 'run.lock';
export const SWEEP_LOCK = 'sweep.lock';

/** A file-system error as one line naming the path and, for the usual causes, the fix. */
export const fsMessage = (e: unknown, fallback: string): string => {
  const err = e as NodeJS.ErrnoException;
  // The path the system call failed on is the one to name (a data file, not the run folder).
  const path = err.path ?? fallback;
  switch (err.code) {
    case 'EACCES':
    case 'EPERM':
      return `${path}: permission denied: choose a folder you can write to, or fix its permissions`;
    case 'ENOSPC':
      return `${path}: the disk is full: free some space and run again`;
    case 'ENOTDIR':
      return `${path}: a part of this path is a file, not a folder`;
    case 'EROFS':
      return `${path}: the file system is read-only: choose another folder`;
    case 'ENOENT':
      return `${path}: no such file or folder`;
    case 'EISDIR':
      return `${path}: is a folder, where a file was expected`;
    default:
      return `${path}: ${err.message ?? String(e)}`;
  }
};

/** Runs `f`, turning a thrown file-system error into a `Left` naming `path`. */
export const tryFs = <A>(path: string, f: () => A): E.Either<Error, A> => {
  try {
    return E.right(f());
  } catch (e) {
    return E.left(new Error(fsMessage(e, path)));
  }
};

/**
 * A config name as one safe path segment: letters, digits, `.`, `_`, `-`;
 * anything else (slashes, `..` at the start, spaces, control characters) becomes `_`.
 */
export const sanitizeName = (name: string): string => {
  const s = name
    .normalize('NFKC')
    .replace(/[^A-Za-z0-9._-]+/g, '_')
    .replace(/^[.-]+/, '_')
    .slice(0, 100);
  return s === '' || s === '_' ? 'run' : s;
};

/** `runs/<name>-20261130-041500`: sortable, and readable in a listing. */
export const timeStamp = (): string => new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);

/** Whether a process with this id is running here (EPERM: it is, but another user's). */
export const processAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

const readLock = (file: string): LockInfo | undefined => {
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as Partial<LockInfo>;
    return typeof v.pid === 'number' && typeof v.host === 'string' && typeof v.started === 'string' ? (v as LockInfo) : undefined;
  } catch {
    return undefined;
  }
};

/** Stale: its process is gone (same host), or it was never written out (its creator died at once). */
const isStale = (file: string, info: LockInfo | undefined): boolean => {
  if (info === undefined) {
    // A lock is written right after it is created: an unreadable one older than a few seconds is a crash's leftover.
    try {
      return Date.now() - statSync(file).mtimeMs > 5000;
    } catch {
      return false;
    }
  }
  return info.host === hostname() && !processAlive(info.pid);
};

const createLock = (file: string): E.Either<'taken', void> => {
  let fd: number;
  try {
    fd = openSync(file, 'wx');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return E.left('taken');
    throw e;
  }
  try {
    writeSync(fd, JSON.stringify({ pid: process.pid, host: hostname(), started: new Date().toISOString() } satisfies LockInfo));
  } finally {
    closeSync(fd);
  }
  return E.right(undefined);
};

/**
 * A process id can be reused after a crash, so a lock can look alive when it is
 * not: the message says how to clear it by hand, once the user has checked.
 */
const inUse = (dir: string, info: LockInfo | undefined, name = RUN_LOCK): Error =>
  new Error(
    info === undefined
      ? `${dir} is in use by another tapegrad process (its lock is being written): wait for it, or choose another folder`
      : `${dir} is in use by process ${info.pid} on ${info.host} (since ${info.started}): wait for it to finish, or choose another folder ` +
          `(if no tapegrad process is running there, remove ${join(dir, name)})`,
  );

/**
 * Takes `dir`'s lock. A live holder is refused; a dead one's lock is taken
 * over (reported in `stale`). Two processes taking over the same stale lock are
 * serialized by a second exclusive file, so only one of them wins.
 */
export const lockFolder = (dir: string, name = RUN_LOCK): E.Either<Error, RunLock> => {
  const file = join(dir, name);
  const made = (stale?: LockInfo): RunLock => {
    removeStaleTemporaries(dir);
    let held = true;
    return {
      dir,
      file,
      ...(stale ? { stale } : {}),
      release: () => {
        if (held) {
          held = false;
          rmSync(file, { force: true });
        }
      },
    };
  };
  try {
    if (E.isRight(createLock(file))) return E.right(made());
    const info = readLock(file);
    if (!isStale(file, info)) return E.left(inUse(dir, info, name));
    const takeover = `${file}.takeover`;
    // A takeover mutex left by a process that died mid-takeover is itself stale after a while.
    if (existsSync(takeover) && Date.now() - statSync(takeover).mtimeMs > 30_000) rmSync(takeover, { force: true });
    let fd: number;
    try {
      fd = openSync(takeover, 'wx');
    } catch {
      return E.left(inUse(dir, info, name));
    }
    closeSync(fd);
    try {
      const again = readLock(file);
      if (existsSync(file) && !isStale(file, again)) return E.left(inUse(dir, again, name));
      rmSync(file, { force: true });
      if (E.isLeft(createLock(file))) return E.left(inUse(dir, readLock(file), name));
      return E.right(made(info ?? { pid: 0, host: hostname(), started: 'unknown' }));
    } finally {
      rmSync(takeover, { force: true });
    }
  } catch (e) {
    return E.left(new Error(fsMessage(e, dir)));
  }
};

/**
 * Removes the atomic-write temporaries (`.checkpoint.json.<pid>.tmp`) that a
 * process killed mid-write left in `dir`: those of processes no longer
 * running. Called once a folder's lock is held, so no live writer is there.
 */
export const removeStaleTemporaries = (dir: string): string[] => {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return removed;
  }
  for (const f of names) {
    const m = /^\..+\.(\d+)\.tmp$/.exec(f);
    if (m === null) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || processAlive(pid)) continue;
    try {
      rmSync(join(dir, f), { force: true });
      removed.push(f);
    } catch {
      /* left for the next lock holder */
    }
  }
  return removed;
};

/** The lock's holder if a live process holds `dir`, else undefined (free, or stale). */
export const liveHolder = (dir: string, name = RUN_LOCK): LockInfo | undefined => {
  const file = join(dir, name);
  if (!existsSync(file)) return undefined;
  const info = readLock(file);
  return isStale(file, info) ? undefined : (info ?? { pid: 0, host: 'unknown', started: 'unknown' });
};

/** Names in a folder that are not ours to ignore (locks and atomic-write temporaries). */
const contents = (dir: string): string[] => readdirSync(dir).filter((f) => !f.endsWith('.lock') && !f.endsWith('.takeover') && !/^\..*\.tmp$/.test(f));

/** What a folder given as `--out` holds, for the refusal message. */
const describeOccupied = (dir: string, files: string[], kind: 'run' | 'sweep'): Error => {
  // A live holder first: a run starting there has written only some of its files yet.
  const lockName = kind === 'run' ? RUN_LOCK : SWEEP_LOCK;
  const holder = liveHolder(dir, lockName);
  if (holder !== undefined) return inUse(dir, holder, lockName);
  if (kind === 'run') {
    if (files.includes('result.json')) return new Error(`${dir} holds a finished run, which is never overwritten: choose another --out`);
    if (files.includes('config.json') || files.includes('checkpoint.json') || files.includes('run.json')) {
      return new Error(`${dir} holds an unfinished run: continue it with --resume ${dir}, or choose another --out`);
    }
  } else {
    if (files.includes('table.md')) return new Error(`${dir} holds a finished sweep, which is never overwritten: choose another --out`);
  }
  const shown = files.slice(0, 3).join(', ') + (files.length > 3 ? `, … (${files.length} entries)` : '');
  return new Error(`${dir} is not empty and is not a tapegrad ${kind} folder (it holds ${shown}): choose a new or empty folder for --out`);
};

/** Whether `dir` could be claimed for a new run now (absent, or an empty folder), without claiming it. */
export const checkNewFolder = (dir: string, kind: 'run' | 'sweep' = 'run'): E.Either<Error, void> => {
  const seen = tryFs(dir, () => (!existsSync(dir) ? undefined : statSync(dir).isDirectory() ? contents(dir) : ('file' as const)));
  if (E.isLeft(seen)) return seen;
  if (seen.right === 'file') return E.left(new Error(`${dir} is a file, not a folder: choose another --out`));
  if (seen.right !== undefined && seen.right.length > 0) return E.left(describeOccupied(dir, seen.right, kind));
  const holder = seen.right === undefined ? undefined : liveHolder(dir, kind === 'run' ? RUN_LOCK : SWEEP_LOCK);
  if (holder !== undefined) return E.left(inUse(dir, holder, kind === 'run' ? RUN_LOCK : SWEEP_LOCK));
  return E.right(undefined);
};

/**
 * Claims `dir` for a new run: created if absent, else it must be an empty
 * folder. Refuses a file, a folder holding anything (a finished or unfinished
 * run, or someone's files), and a folder another process holds.
 */
export const claimNewFolder = (dir: string, kind: 'run' | 'sweep' = 'run'): E.Either<Error, RunLock> => {
  const made = tryFs(dir, () => {
    if (existsSync(dir) && !statSync(dir).isDirectory()) return 'file' as const;
    mkdirSync(join(dir, '..'), { recursive: true });
    try {
      mkdirSync(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    return statSync(dir).isDirectory() ? ('folder' as const) : ('file' as const);
  });
  if (E.isLeft(made)) return made;
  if (made.right === 'file') return E.left(new Error(`${dir} is a file, not a folder: choose another --out`));
  const before = tryFs(dir, () => contents(dir));
  if (E.isLeft(before)) return before;
  if (before.right.length > 0) return E.left(describeOccupied(dir, before.right, kind));
  const lock = lockFolder(dir, kind === 'run' ? RUN_LOCK : SWEEP_LOCK);
  if (E.isLeft(lock)) return lock;
  // Look again now that the folder is ours: another process may have filled and released it meanwhile.
  const after = tryFs(dir, () => contents(dir));
  if (E.isLeft(after) || after.right.length > 0) {
    lock.right.release();
    return E.isLeft(after) ? after : E.left(describeOccupied(dir, after.right, kind));
  }
  return lock;
};

/** Claims a new folder `<parent>/<name>-<time>[-n]` (never an existing one). */
export const claimFreshFolder = (parent: string, name: string, kind: 'run' | 'sweep' = 'run'): E.Either<Error, RunLock> => {
  const base = join(parent, `${sanitizeName(name)}-${timeStamp()}`);
  const made = tryFs(parent, () => {
    mkdirSync(parent, { recursive: true });
    for (let i = 1; ; i++) {
      const dir = i === 1 ? base : `${base}-${i}`;
      try {
        mkdirSync(dir);
        return dir;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
    }
  });
  if (E.isLeft(made)) return made;
  return lockFolder(made.right, kind === 'run' ? RUN_LOCK : SWEEP_LOCK);
};

/**
 * Callbacks run when the process exits with a run still open (a second Ctrl-C,
 * an uncaught error, `process.exit` anywhere): they record the run's status
 * and release its lock synchronously, so run.json never says `running` for a
 * run nobody runs. Only SIGKILL escapes; that leaves a stale lock, detected later.
 */
const onExit = new Set<(code: number) => void>();
let hooked = false;
export const whileOpen = (f: (code: number) => void): (() => void) => {
  if (!hooked) {
    hooked = true;
    process.on('exit', (code) => {
      for (const g of [...onExit]) {
        try {
          g(code);
        } catch {
          /* exiting: nothing more to do */
        }
      }
    });
  }
  onExit.add(f);
  return () => {
    onExit.delete(f);
  };
};
