/**
 * Levels order the running transformations: one started later (inside
 * another's function, or on another's results) has the higher level, and
 * `bind` hands each op to the highest level among its inputs' traces. A
 * counter, not a stack: a pullback returned by `vjp` can be called later under
 * `vmap` or another tape, whose higher levels then see the tape's values as
 * constants, as they are.
 */
let counter = 0;

/** A level above every transformation started so far. */
export const nextLevel = (): number => ++counter;
