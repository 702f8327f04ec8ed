// `npm test`: type-check, then vitest. Without an X display, and with Xvfb
// installed, the run is wrapped in `xvfb-run -a` so the gpujs (headless WebGL)
// tests run instead of skipping; CI relies on this.
import { spawnSync } from 'node:child_process';

const args = process.argv.slice(2);
const haveXvfb = spawnSync('sh', ['-c', 'command -v xvfb-run'], { stdio: 'ignore' }).status === 0;
const wrap = !process.env.DISPLAY && haveXvfb;
const run = (cmd, cmdArgs) => {
  const r = wrap ? spawnSync('xvfb-run', ['-a', cmd, ...cmdArgs], { stdio: 'inherit' }) : spawnSync(cmd, cmdArgs, { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
if (!wrap && !process.env.DISPLAY) console.warn('no X display and no xvfb-run: the gpujs tests will skip (install xvfb to run them)');
run('npx', ['tsc', '--noEmit', '-p', '.']);
run('npx', ['vitest', 'run', ...args]);
