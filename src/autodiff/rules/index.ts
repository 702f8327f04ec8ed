/**
 * Every primitive's transformation rules (VJP, JVP, batching), in one table
 * typed over all primitive names: a primitive missing a rule does not compile.
 * The families live side by side in this folder; see types.ts for what a rule is.
 */
import type { Primitive } from '../../core/index.js';
import { customRules } from './custom.js';
import { elementwiseRules } from './elementwise.js';
import { imageRules } from './images.js';
import { structuralRules } from './structural.js';
import { registerRules } from '../rule-table.js';
import type { AdRule } from './types.js';

export const adRules: { readonly [P in Primitive]: AdRule<P> } = {
  ...elementwiseRules,
  ...structuralRules,
  ...imageRules,
  ...customRules,
};

registerRules(adRules);

export type { AdRule, BatchRule, ConstantRule, DifferentiableRule, JvpRule, VjpRule } from './types.js';
