/** Checks of arguments that come from JavaScript, where the types do not hold. */

/** Options objects from JavaScript: a key the op does not know is an error, not silently ignored. */
export const checkOptions = (op: string, opts: unknown, known: readonly string[]): void => {
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) {
    throw new TypeError(
      `${op}: options must be an object (it takes ${known.join(', ')}), got ${opts === null ? 'null' : Array.isArray(opts) ? 'an array' : typeof opts}`,
    );
  }
  const unknown = Object.keys(opts).filter((k) => !known.includes(k));
  if (unknown.length > 0)
    throw new TypeError(`${op}: unknown option${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${k}'`).join(', ')} (it takes ${known.join(', ')})`);
};

/** An integer argument, checked (JavaScript callers pass anything). */
export const checkInt = (op: string, name: string, v: unknown, min = Number.NEGATIVE_INFINITY): number => {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
    throw new TypeError(`${op}: ${name} must be an integer${min > Number.NEGATIVE_INFINITY ? ` ≥ ${min}` : ''}, got ${typeof v === 'number' ? v : typeof v}`);
  }
  return v;
};

/** A boolean argument, checked. */
export const checkBool = (op: string, name: string, v: unknown): boolean => {
  if (typeof v !== 'boolean') throw new TypeError(`${op}: ${name} must be true or false, got ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`);
  return v;
};

/** A number argument, checked (NaN and ±∞ are numbers: the ops say what they do with them). */
export const checkNumber = (op: string, name: string, v: unknown): number => {
  if (typeof v !== 'number') throw new TypeError(`${op}: ${name} must be a number, got ${typeof v === 'string' ? JSON.stringify(v) : typeof v}`);
  return v;
};
