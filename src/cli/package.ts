/**
 * The installed package as the command line sees it: its version, and the
 * example configs it ships (examples/configs/), found from the package's
 * root whether the command runs from src/ (tsx) or dist/.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package's root folder: src/cli/ and dist/cli/ are both two levels below it. */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The version in the package's package.json. */
export const packageVersion = (): string => (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/**
 * A path given on the command line; when it names nothing here but names a
 * file the package ships (`examples/configs/headline.yaml` run from any
 * folder, as the README says), the shipped file.
 */
export const shippedPath = (path: string): string =>
  existsSync(path) || isAbsolute(path) || !existsSync(join(PACKAGE_ROOT, path)) ? path : join(PACKAGE_ROOT, path);
