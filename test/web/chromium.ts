/**
 * Drives Debian's Chromium over the DevTools protocol on a pipe
 * (--remote-debugging-pipe: JSON messages ended by a NUL byte, fd 3 in, fd 4
 * out). A few lines instead of puppeteer-core: its current releases need
 * Node ≥ 22, and the protocol calls used here are stable ones.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';

/** The browser: CHROMIUM, else Debian's package (apt-get install chromium). */
export const chromiumPath = (): string | undefined =>
  [process.env['CHROMIUM'], '/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => p !== undefined && p !== '' && existsSync(p));

export interface Page {
  /** Evaluates an expression in the page (awaiting a promise) and returns its JSON value; throws the page's exception. */
  evaluate<T>(expression: string): Promise<T>;
  navigate(url: string): Promise<void>;
  screenshot(): Promise<Buffer>;
  /** The page's console lines and uncaught errors so far (for failure messages). */
  readonly log: string[];
}

export const launch = async (exe: string, extraFlags: readonly string[] = []): Promise<{ page: Page; close(): Promise<void> }> => {
  const profile = mkdtempSync(join(tmpdir(), 'tapegrad-chromium-'));
  const proc: ChildProcess = spawn(
    exe,
    [
      '--headless=new',
      '--remote-debugging-pipe',
      `--user-data-dir=${profile}`,
      '--no-first-run',
      '--no-default-browser-check',
      '--no-sandbox', // root in CI containers
      '--disable-dev-shm-usage',
      // WebGL without a GPU: SwiftShader, which Chromium asks to be named (software rendering is slow, and this is a test).
      '--use-angle=swiftshader',
      '--enable-unsafe-swiftshader',
      '--ignore-gpu-blocklist',
      '--window-size=1200,1600',
      ...extraFlags,
      'about:blank',
    ],
    // Its own process group, so closing ends its helper processes too (they wrote into the profile after the
    // browser exited: an ENOTEMPTY race in rmSync, seen in CI and again with the WebGPU worker).
    { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'], detached: true },
  );
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const toBrowser = proc.stdio[3] as Writable,
    fromBrowser = proc.stdio[4] as Readable;
  let nextId = 1;
  const pending = new Map<number, { ok(v: unknown): void; fail(e: Error): void; method: string }>();
  const listeners: Array<(method: string, params: Record<string, unknown>, sessionId?: string) => void> = [];
  let buffered = Buffer.alloc(0);
  fromBrowser.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    for (let end = buffered.indexOf(0); end >= 0; end = buffered.indexOf(0)) {
      const msg = JSON.parse(buffered.subarray(0, end).toString('utf8'));
      buffered = buffered.subarray(end + 1);
      if (msg.id !== undefined) {
        const p = pending.get(msg.id);
        pending.delete(msg.id);
        if (msg.error) p?.fail(new Error(`${p.method}: ${msg.error.message}`));
        else p?.ok(msg.result);
      } else for (const l of listeners) l(msg.method, msg.params, msg.sessionId);
    }
  });
  const exited = new Promise<void>((ok) =>
    proc.once('exit', () => {
      for (const p of pending.values()) p.fail(new Error(`chromium exited during ${p.method}: ${stderr}`));
      ok();
    }),
  );
  const send = <T>(method: string, params: object = {}, sessionId?: string): Promise<T> =>
    new Promise<T>((ok, fail) => {
      const id = nextId++;
      pending.set(id, { ok: ok as (v: unknown) => void, fail, method });
      toBrowser.write(`${JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) })}\0`);
    });

  const { targetInfos } = await send<{ targetInfos: Array<{ targetId: string; type: string }> }>('Target.getTargets');
  const target = targetInfos.find((t) => t.type === 'page') ?? {
    targetId: (await send<{ targetId: string }>('Target.createTarget', { url: 'about:blank' })).targetId,
  };
  const { sessionId } = await send<{ sessionId: string }>('Target.attachToTarget', { targetId: target.targetId, flatten: true });
  const log: string[] = [];
  let loaded: (() => void) | undefined;
  listeners.push((method, params, sid) => {
    if (sid !== sessionId) return;
    if (method === 'Runtime.consoleAPICalled')
      log.push(
        `console.${params['type']}: ${(params['args'] as Array<{ value?: unknown; description?: string }>).map((a) => a.value ?? a.description).join(' ')}`,
      );
    if (method === 'Runtime.exceptionThrown')
      log.push(`exception: ${JSON.stringify((params['exceptionDetails'] as { exception?: { description?: string } }).exception?.description)}`);
    if (method === 'Page.loadEventFired') loaded?.();
  });
  await send('Runtime.enable', {}, sessionId);
  await send('Page.enable', {}, sessionId);
  await send('Emulation.setDeviceMetricsOverride', { width: 1200, height: 1600, deviceScaleFactor: 1, mobile: false }, sessionId);

  const page: Page = {
    log,
    navigate: async (url) => {
      const load = new Promise<void>((ok) => {
        loaded = ok;
      });
      await send('Page.navigate', { url }, sessionId);
      await load;
    },
    evaluate: async <T>(expression: string) => {
      const r = await send<{ result: { value?: T }; exceptionDetails?: { exception?: { description?: string }; text: string } }>(
        'Runtime.evaluate',
        { expression, awaitPromise: true, returnByValue: true },
        sessionId,
      );
      if (r.exceptionDetails) throw new Error(`in the page: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}\n${log.join('\n')}`);
      return r.result.value as T;
    },
    screenshot: async () =>
      Buffer.from((await send<{ data: string }>('Page.captureScreenshot', { format: 'png', captureBeyondViewport: true }, sessionId)).data, 'base64'),
  };
  return {
    page,
    close: async () => {
      try {
        process.kill(-proc.pid!, 'SIGKILL');
      } catch {
        proc.kill('SIGKILL'); // the group is gone already, or no group: the browser alone
      }
      await exited;
      // Chromium's helper processes can still write into the profile for a moment after the browser
      // exits (an ENOTEMPTY race seen in CI): retry with backoff rather than fail a finished test.
      rmSync(profile, { recursive: true, force: true, maxRetries: 20, retryDelay: 100 });
    },
  };
};
