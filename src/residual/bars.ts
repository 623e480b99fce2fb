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

/** Narrowest drawn bar: tiny contributions stay visible (their value is printed beside them). */
export const MIN_BAR_PX = 2;
/** Palest bar colour, as a fraction of the scale's bound. */
const MIN_SHADE = 0.3;

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
        // Grows away from the zero line; a non-zero value never draws narrower than MIN_BAR_PX.
        const fill = el("span", { className: "lw-res-bar-fill" });
        fill.style.width = `${(frac * 50).toFixed(3)}%`;
        if (value < 0) fill.style.right = "50%";
        else fill.style.left = "50%";
        if (Number.isFinite(value) && value !== 0) fill.style.minWidth = `${MIN_BAR_PX}px`;
        // Colour by sign and size, but never as pale as the background near zero.
        fill.style.backgroundColor = scale.color(Math.sign(value) * Math.max(Math.abs(value), MIN_SHADE * bound));
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
