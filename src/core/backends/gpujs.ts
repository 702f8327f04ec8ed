// Placeholder while the gpujs backend is rewritten for the new Backend interface (branch gpujs).
import type { Backend } from '../backend.js';
export const createGpujsBackend = (): Backend & { readonly renderer: string } => {
  throw new Error('the gpujs backend is being rewritten');
};
