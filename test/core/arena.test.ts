/**
 * The cpu backend's tensor memory (src/core/backends/arena.ts): blocks come back
 * zeroed and of the asked size, a full arena declines (the caller then uses
 * ordinary memory) instead of throwing, and memory freed in one size serves
 * others (an old data set's, once disposed, serves the next run's).
 */
import * as fc from 'fast-check';
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
    // A block released (as freeing a tensor does) comes back zeroed for the same size.
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

    // Space: live blocks fill it up to near its end: decline rather than grow past it.
    const spaced = make(64, 1024, 40);
    spaced.malloc(32 * MiB);
    expect(spaced.allocFloat32(3 * MiB)).toBeUndefined(); // 12 MiB more would end past 40 MiB
    expect(spaced.allocFloat32(1.75 * MiB)).toBeDefined(); // 7 MiB: ends below 40 MiB
  });

  it('serves any size from memory freed in other sizes: merged neighbours, split blocks, the bump pointer lowered', () => {
    // An old data set's matrices (20 + 5 + 5 MiB), freed while a model's block sits above them...
    const arena = make(64, 1024, 48);
    const old = [arena.malloc(20 * MiB), arena.malloc(5 * MiB), arena.malloc(5 * MiB)];
    const above = arena.malloc(1 * MiB);
    const committed = arena.stats().committedBytes;
    old.forEach((o, i) => {
      arena.release(o, [20, 5, 5][i]! * MiB);
    });
    // ...serve a new one of other sizes (3 × 10 MiB) without growing, zeroed.
    const fresh = [0, 1, 2].map(() => arena.allocFloat32(2.5 * MiB)!);
    expect(fresh.map((x) => x.byteOffset)).toEqual([old[0], old[0]! + 10 * MiB, old[0]! + 20 * MiB]);
    expect(fresh.every((x) => x.every((v) => v === 0))).toBe(true);
    expect(arena.stats().committedBytes).toBe(committed);
    // Freeing the topmost block hands its space back to the bump pointer.
    arena.release(above, 1 * MiB);
    expect(arena.malloc(1 * MiB)).toBe(above);
  });

  it('never hands out overlapping blocks, and frees back to one piece (random programs)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 300_000 }), fc.nat()), { minLength: 1, maxLength: 120 }), (program) => {
        const memory = new WebAssembly.Memory({ initial: 1, maximum: 512, shared: true }); // 32 MiB
        const arena = createArena(memory, { tensorCap: 32 * MiB, tensorSpace: 32 * MiB, maxPages: 512, zero: () => {} });
        const live: Array<[number, number]> = [];
        for (const [alloc, bytes, pick] of program) {
          if (alloc || live.length === 0) {
            const offset = arena.malloc(bytes);
            for (const [o, b] of live) expect(offset + bytes <= o || o + b <= offset).toBe(true);
            expect(offset > 0 && offset + bytes <= memory.buffer.byteLength).toBe(true);
            live.push([offset, bytes]);
          } else {
            const [o, b] = live.splice(pick % live.length, 1)[0]!;
            arena.release(o, b);
          }
        }
        for (const [o, b] of live) arena.release(o, b);
        // All free again, in one piece: a block as large as all ever used fits without growing.
        const grown = memory.buffer.byteLength;
        const all = arena.stats().committedBytes - 64;
        expect(arena.malloc(all)).toBe(64);
        expect(memory.buffer.byteLength).toBe(grown);
      }),
      { numRuns: 200 },
    );
  });
});
