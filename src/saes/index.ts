/**
 * The SAE panels, a bundle of their own (lenswidget/static/saes.js) that the residual
 * explorer and the patcher load at run time when they have SAEs (src/shared/lazy.ts).
 */
export { residual } from "./residual";
export { patcher } from "./patcher";
