/**
 * The SAE panels of the residual explorer and the patcher: a bundle of their own
 * (lenswidget/static/saes.js) that the kernel sends, as a `data:` module URL in the
 * `sae_esm` trait, only to widgets that have SAEs (lenswidget/widgets/saes.py). The widget's
 * `Frame` imports it and calls `mount(model, frame)` (src/shared/frame.ts), so the widget
 * bundles carry nothing of it but that loader (about 85 bytes).
 */
import type { Frame } from "../shared/frame";
import type { WidgetModel } from "../shared/types";
import { patcher } from "./patcher";
import { residual } from "./residual";

export { patcher, residual };

/** Mount the panel of the widget this frame belongs to; it is removed when the view is disposed. */
export function mount(model: WidgetModel, frame: Frame): void {
  const kind = frame.root.dataset.widget;
  const panel = kind === "residual" ? residual : kind === "patcher" ? patcher : null;
  if (panel && frame.root.isConnected) frame.disposer.add(panel(model, frame));
}
