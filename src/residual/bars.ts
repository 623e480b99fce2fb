/**
 * The attribution bars: one DOM row per component (label, a bar centred at zero, value).
 * Rows are `lw-res-bar` elements carrying `data-label`, `data-kind`, `data-value`,
 * `data-index` (position in the kernel's order), `data-openable` and `data-selected`.
 */
import type { ColorScale } from "../shared/colors";
import { el } from "../shared/dom";
import { formatValue } from "../shared/format";
import { isOpenable } from "./order";
import type { BarsData } from "./state";

export class BarChart {
  readonly node: HTMLDivElement;

  constructor() {
    this.node = el("div", { testid: "lw-res-bars", className: "lw-res-bars", attrs: { role: "list" } });
  }

  /** Draw `bars` in `order`; `selected` (a label) is outlined. */
  render(bars: BarsData, order: number[], selected: string | null, scale: ColorScale): void {
    const d = this.node.dataset;
    d.level = bars.level;
    d.layer = bars.layer === null ? "" : String(bars.layer);
    const bound = Math.max(scale.max, 1e-12);
    this.node.replaceChildren(
      ...order.map((i) => {
        const label = bars.labels[i] ?? "";
        const kind = bars.kinds[i] ?? "";
        const value = bars.values[i] ?? NaN;
        const open = isOpenable(kind);
        const frac = Number.isFinite(value) ? Math.min(1, Math.abs(value) / bound) : 0;
        const fill = el("span", { className: "lw-res-bar-fill" });
        fill.style.width = `${(frac * 50).toFixed(3)}%`;
        fill.style.left = value < 0 ? `${(50 - frac * 50).toFixed(3)}%` : "50%";
        fill.style.backgroundColor = scale.color(value);
        return el("div", {
          testid: "lw-res-bar",
          className: "lw-res-bar",
          attrs: {
            role: "listitem",
            "data-label": label,
            "data-kind": kind,
            "data-value": String(value),
            "data-index": String(i),
            "data-openable": String(open),
            "data-selected": String(label === selected),
            ...(open ? { tabindex: "0" } : {}),
          },
          children: [
            el("span", { testid: "lw-res-bar-label", className: "lw-res-bar-label", text: label }),
            el("span", { className: "lw-res-bar-track", children: [el("span", { className: "lw-res-bar-zero" }), fill] }),
            el("span", { testid: "lw-res-bar-value", className: "lw-res-bar-value", text: formatValue(value) }),
          ],
        });
      }),
    );
  }

  /** The bar row under an event target, or null. */
  static rowOf(target: EventTarget | null): HTMLElement | null {
    const node = target instanceof Element ? target.closest('[data-testid="lw-res-bar"]') : null;
    return node as HTMLElement | null;
  }
}
