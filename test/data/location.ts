import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

/** The genuine dataset: CIFAR100_DIR, else ../shared/data/cifar-100-binary beside the repo. */
export const CIFAR_DIR = resolve(process.env['CIFAR100_DIR'] ?? resolve(import.meta.dirname, '../../../shared/data/cifar-100-binary'));
if (!existsSync(resolve(CIFAR_DIR, 'train.bin'))) {
  throw new Error(`CIFAR-100 not found at ${CIFAR_DIR}: set CIFAR100_DIR to the folder holding train.bin and test.bin`);
}
