/** Autodiff: the tape, function transformations, gradient checking. */
export { valueAndGrad, valueAndGradWithAux, grad, vjp, countParams, type ValueAndGrad, type ValueAndGradWithAux } from './grad.js';
export {
  gradcheck,
  checkGradsDirectional,
  centralDifference,
  GradcheckError,
  type GradcheckOptions,
  type GradcheckReport,
  type GradientComparison,
  type DirectionalCheck,
} from './gradcheck.js';
export { leaves, leafPaths, mapTree, zipTree, type Fn, type Tree, type TreeOf, type Treelike } from './tree.js';
export { jvp, vmap, jacfwd, jacrev, hessian, hvp, type JvpResult, type InAxes, type VmapOptions } from './transforms.js';
export { jit, JitError, type Jitted, type JitOptions, type Program, type Equation, type Slot } from './jit.js';
export type { FusionGroup, FusionPlan, FusedRun } from './fusion.js';
