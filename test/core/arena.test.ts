/**
 * The cpu backend's tensor memory (src/core/backends/arena.ts): blocks come back
 * zeroed and of the asked size, and a full arena declines (the caller then uses
 * ordinary memory) instead of throwing, even when free blocks of other sizes,
 * such as an old data set awaiting collection, fill its address space.
 */
import { describe, expect, it } from 'vitest';
import { createArena } from '../../src/core/backends/arena.js';

const MiB = 1024 * 1024;
const PAGE = 65536;

const make = (maxMiB: number, tensorCapMiB: number, tensorSpaceMiB: number) => {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: (maxMiB * MiB) / PAGE, shared: true });
  const zero = (offset: number, bytes: number) => new Uint8Array(memory.buffer, offset, bytes).fill(0);
  return createArena(memory, { tensorCap: tensorCapMiB * MiB, tensorSpace: tensorSpaceMiB * MiB, maxPages: (maxMiB * MiB) / PAGE, zero });
};

describe('cpu backend tensor memory (arena)', () => {
  it('hands out views of the asked length inside its memory, and recycles released blocks zeroed', () => {
    const arena = make(64, 32, 48);
    const a = arena.allocFloat32(1000)!;
    expect(a).toHaveLength(1000);
    expect(arena.owns(a)).toBe(true);
    expect(arena.owns(new Float32Array(4))).toBe(false);
    a.fill(3);
    // A block released (as the finalizer does) comes back zeroed for the same size.
    const off = arena.malloc(4000);
    new Float32Array(arena.view().buffer, off, 1000).fill(5);
    arena.release(off, 4000);
    const b = arena.allocFloat32(1000)!;
    expect(b.byteOffset).toBe(off);
    expect(b.every((v) => v === 0)).toBe(true);
    expect(a.every((v) => v === 3)).toBe(true);
  });

  it('declines past its tensor cap and past its tensor space, never throwing', () => {
    const capped = make(64, 8, 48);
    expect(capped.allocFloat32(1.5 * MiB)).toBeDefined(); // 6 MiB
    expect(capped.allocFloat32(1.5 * MiB)).toBeUndefined(); // 12 MiB live > 8 MiB cap

    // Space: blocks of another size sit on the free list (not reusable for this
    // size) and the bump pointer nears the end: decline rather than grow past it.
    const spaced = make(64, 1024, 40);
    const offs = [spaced.malloc(16 * MiB), spaced.malloc(16 * MiB)];
    for (const o of offs) spaced.release(o, 16 * MiB);
    expect(spaced.allocFloat32(3 * MiB)).toBeUndefined(); // 12 MiB more would end past 40 MiB
    expect(spaced.allocFloat32(1.75 * MiB)).toBeDefined(); // 7 MiB: ends below 40 MiB
    expect(spaced.allocFloat32(4 * MiB)).toBeDefined(); // the freed 16 MiB blocks are reused
  });
});
