// `npm run demo`: serves the browser demo (examples/web/) on http://localhost:8080
// (PORT to change it). The page and its worker are bundled with esbuild at
// start, from the built library (dist: `npm run demo` builds first). CIFAR-100
// slices come from CIFAR100_DIR (else ./data/cifar-100-binary): the first
// `records` images of train.bin or test.bin; a user can pick their own files
// on the page instead. Every response carries the two headers that make the
// page cross-origin isolated, which shared WebAssembly memory (the cpu
// backend's two threads) needs.
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const web = join(root, 'examples/web');
const RECORD = 3074;
const MAX_RECORDS = { train: 50000, test: 10000 };

const bundle = async (entry, format, dir = web) => {
  // import.meta appears only on tapegrad's Node paths (platform.ts), never taken in a browser: not worth a warning.
  const r = await build({
    entryPoints: [join(dir, entry)],
    bundle: true,
    platform: 'browser',
    format,
    write: false,
    minify: true,
    sourcemap: 'inline',
    logLevel: 'warning',
    logOverride: { 'empty-import-meta': 'silent' },
  });
  return r.outputFiles[0].contents;
};

/**
 * Starts the server; resolves to its URL and a close function. `workers` maps more paths to
 * entry files (absolute) bundled as classic workers: the browser test's own scripts.
 */
export const startDemoServer = async ({ port = 8080, dataDir = process.env.CIFAR100_DIR || join(root, 'data/cifar-100-binary'), workers = {} } = {}) => {
  if (!existsSync(join(root, 'dist/index.js'))) throw new Error("the library is not built: run 'npm run build' (npm run demo does)");
  const files = {
    '/': ['text/html', readFileSync(join(web, 'index.html'))],
    '/page.js': ['text/javascript', await bundle('page.ts', 'esm')],
    '/worker.js': ['text/javascript', await bundle('worker.ts', 'iife')],
    '/vendor/gpu-browser.min.js': ['text/javascript', readFileSync(join(root, 'node_modules/gpu.js/dist/gpu-browser.min.js'))],
  };
  for (const [path, entry] of Object.entries(workers)) files[path] = ['text/javascript', await bundle(entry, 'iife', '/')];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const send = (status, type, body) => {
      res.writeHead(status, {
        'content-type': type,
        'cross-origin-opener-policy': 'same-origin',
        'cross-origin-embedder-policy': 'require-corp',
        'cache-control': 'no-store',
      });
      res.end(body);
    };
    const data = /^\/data\/(train|test)\.bin$/.exec(url.pathname);
    if (data !== null) {
      const split = data[1];
      const records = Number(url.searchParams.get('records') ?? MAX_RECORDS[split]);
      if (!Number.isInteger(records) || records < 1 || records > MAX_RECORDS[split]) return send(400, 'text/plain', `records must be 1..${MAX_RECORDS[split]}`);
      const file = join(dataDir, `${split}.bin`);
      if (!existsSync(file))
        return send(404, 'text/plain', `${file} not found: set CIFAR100_DIR to the folder holding train.bin and test.bin, or pick the files on the page`);
      const buf = Buffer.alloc(records * RECORD);
      const fd = openSync(file, 'r');
      try {
        readSync(fd, buf, 0, buf.length, 0);
      } finally {
        closeSync(fd);
      }
      return send(200, 'application/octet-stream', buf);
    }
    const f = files[url.pathname];
    return f === undefined ? send(404, 'text/plain', 'not found') : send(200, f[0], f[1]);
  });
  await new Promise((ok, fail) => server.once('error', fail).listen(port, '127.0.0.1', ok));
  const address = server.address();
  return { url: `http://127.0.0.1:${address.port}/`, close: () => new Promise((ok) => server.close(ok)) };
};

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { url } = await startDemoServer({ port: Number(process.env.PORT ?? 8080) });
  console.log(`tapegrad demo: open ${url} (Ctrl-C to stop)`);
}
