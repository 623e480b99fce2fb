/**
 * Optional panels loaded at run time: the SAE parts of the residual explorer and the patcher
 * live in their own bundle (lenswidget/static/saes.js, src/saes/), which the kernel sends
 * in the `sae_esm` trait only to widgets that have SAEs, so the widget bundles stay lean.
 * `extend` imports it (a blob-URL module, as anywidget loads widget code) and calls its
 * `kind` export, which finds its place through the DOM contract (src/DOM.md) and talks to
 * the kernel through the frame; what it returns runs when the view is disposed.
 */
import type { Frame } from "./frame";
import type { WidgetModel } from "./types";

export function extend(model: WidgetModel, frame: Frame, kind: string): void {
  const source = model.get("sae_esm");
  if (source)
    import(URL.createObjectURL(new Blob([source as string], { type: "text/javascript" }))).then(
      (m) => frame.root.isConnected && frame.disposer.add(m[kind](model, frame)),
      (e) => frame.showError("" + e),
    );
}
