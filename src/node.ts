/**
 * `tapegrad/node`: the Node entry (index.ts) by a name that says so, for code
 * that must get the file APIs (loadCifar100, saveModel, …) whichever export
 * condition a tool applies.
 */
export * from './index.js';
