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

/**
 * The error for a traced tensor used after its transformation returned: it
 * escaped through a closure or a variable, and what it stands for is gone.
 */
export const escapedTracer = (kind: string, prim: string): Error =>
  new Error(
    `${prim}: one of its inputs was traced by a ${kind} transformation that has already returned (it escaped the function ` +
      `through a closure or an outer variable); use the values the transformation returned instead`,
  );
