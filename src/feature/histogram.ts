/**
 * The activation histogram: one DOM bar per log-spaced bin of the feature's non-zero
 * activations (`lw-feat-hist-bar`, `data-count`, `data-lo`, `data-hi`), the lowest and
 * highest edges under it. Bars are coloured by the activation at the bin's middle, on the
 * same scale as the context tokens.
 */
import type { ColorScale } from "../shared/colors";
import { el } from "../shared/dom";
import { formatValue } from "../shared/format";
import type { Histogram } from "./state";

const HEIGHT = 80;

export class HistogramView {
  readonly node: HTMLDivElement;
  private readonly bars: HTMLDivElement;
  private readonly axis: HTMLDivElement;
  private readonly caption: HTMLDivElement;

  constructor() {
    this.bars = el("div", { testid: "lw-feat-hist-bars", className: "lw-feat-hist-bars" });
    this.bars.style.height = `${HEIGHT}px`;
    this.axis = el("div", { className: "lw-feat-hist-axis" });
    this.caption = el("div", { className: "lw-feat-caption", text: "Activation histogram (non-zero activations, log-spaced bins)" });
    this.node = el("div", { testid: "lw-feat-hist", className: "lw-feat-hist", children: [this.caption, this.bars, this.axis] });
  }

  render(h: Histogram | null, scale: ColorScale): void {
    this.node.dataset.bins = String(h?.counts.length ?? 0);
    if (!h) {
      this.bars.replaceChildren(el("div", { className: "lw-feat-muted", text: "never fires on this corpus" }));
      this.axis.replaceChildren();
      return;
    }
    let peak = 0;
    for (const c of h.counts) peak = Math.max(peak, c);
    this.bars.replaceChildren(
      ...Array.from(h.counts, (count, i) => {
        const lo = h.edges[i]!;
        const hi = h.edges[i + 1]!;
        const bar = el("div", {
          testid: "lw-feat-hist-bar",
          className: "lw-feat-hist-bar",
          attrs: { "data-count": String(count), "data-lo": String(lo), "data-hi": String(hi), title: `${formatValue(lo)} – ${formatValue(hi)}: ${count}` },
        });
        bar.style.height = `${peak > 0 ? Math.max(count > 0 ? 1 : 0, (count / peak) * HEIGHT) : 0}px`;
        bar.style.backgroundColor = scale.color(Math.sqrt(lo * hi));
        return bar;
      }),
    );
    this.axis.replaceChildren(
      el("span", { testid: "lw-feat-hist-min", text: formatValue(h.edges[0]!) }),
      el("span", { testid: "lw-feat-hist-max", text: formatValue(h.edges[h.edges.length - 1]!) }),
    );
  }
}
