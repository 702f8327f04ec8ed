/**
 * Fusion of a jitted program's element-wise chains (see jit.ts): planned here,
 * run by the backend's fusion capability where it has one.
 */
import type { Program } from './jit.js';

/** One fused chain: its equations (indices into the program's), one pass over `elements` values. */
export interface FusionGroup {
  readonly eqns: readonly number[];
  readonly elements: number;
}

/** A chain ready to run: the kernel over its inputs' buffers, and where it ends. */
export interface FusedRun {
  readonly ins: readonly number[];
  readonly out: number;
  readonly last: number;
  readonly kernel: (bufs: readonly unknown[]) => unknown;
}

/** The fusion groups of a program, and the runs by the index of their first equation. */
export interface FusionPlan {
  readonly groups: readonly FusionGroup[];
  readonly runAt: readonly (FusedRun | undefined)[];
}

export const fuse = (_p: Omit<Program, 'toString'>): FusionPlan | undefined => undefined;
