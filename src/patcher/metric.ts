/**
 * The metric read-out: the value (`data-value`, full precision), a bar from the corrupted
 * run's value to the clean run's, the value before the last change, and the top predicted
 * tokens of the clean, corrupted and patched runs (text only, whitespace made visible).
 */
import { el } from "../shared/dom";
import { formatValue } from "../shared/format";
import { visibleToken } from "../shared/tokens";
import type { TopToken } from "./state";

export interface MetricView {
  name: string;
  value: number | null;
  before: number | null;
  clean: number | null;
  corrupted: number | null;
  pending: boolean;
}

export class MetricPanel {
  readonly node: HTMLDivElement;
  private readonly metric: HTMLDivElement;
  private readonly value: HTMLSpanElement;
  private readonly name: HTMLSpanElement;
  private readonly before: HTMLSpanElement;
  private readonly fill: HTMLDivElement;
  private readonly bar: HTMLDivElement;
  private readonly tops: Record<string, HTMLOListElement> = {};

  constructor() {
    this.value = el("span", { testid: "lw-metric-value", className: "lw-metric-value" });
    this.name = el("span", { testid: "lw-metric-name", className: "lw-muted" });
    this.before = el("span", { testid: "lw-metric-before", className: "lw-muted" });
    this.fill = el("div", { className: "lw-metric-fill" });
    this.bar = el("div", { testid: "lw-metric-bar", className: "lw-metric-bar", children: [this.fill] });
    this.metric = el("div", {
      testid: "lw-metric",
      className: "lw-metric",
      attrs: { "aria-live": "polite" },
      children: [el("div", { children: [this.name] }), el("div", { children: [this.value, this.before] }), this.bar],
    });
    const columns = (["clean", "corrupted", "patched"] as const).map((run) => {
      const list = el("ol", { testid: `lw-top-${run}`, className: "lw-top-list" });
      this.tops[run] = list;
      return el("div", { className: "lw-top-col", children: [el("div", { className: "lw-top-title", text: run }), list] });
    });
    this.node = el("div", {
      className: "lw-metric-panel",
      children: [this.metric, el("div", { testid: "lw-top-tokens", className: "lw-top-tokens", children: columns })],
    });
  }

  update(m: MetricView): void {
    const d = this.metric.dataset;
    d.value = m.value === null ? "" : String(m.value);
    d.pending = String(m.pending);
    this.name.textContent = m.name;
    this.value.textContent = m.value === null ? "n/a" : formatValue(m.value);
    this.before.textContent = m.before === null ? "" : ` (before: ${formatValue(m.before)})`;
    const lo = m.corrupted ?? 0;
    const hi = m.clean ?? 1;
    const frac = m.value === null || hi === lo ? 0 : (m.value - lo) / (hi - lo);
    const shown = Math.max(0, Math.min(1, frac));
    this.bar.dataset.fraction = frac.toFixed(4);
    this.fill.style.width = `${(shown * 100).toFixed(1)}%`;
    this.bar.title = `corrupted ${formatValue(lo)} → clean ${formatValue(hi)}`;
  }

  setTop(run: "clean" | "corrupted" | "patched", tokens: TopToken[]): void {
    this.tops[run]!.replaceChildren(
      ...tokens.map((t) =>
        el("li", {
          testid: "lw-top-token",
          className: "lw-top-token",
          attrs: { "data-id": String(t.id), title: `${JSON.stringify(t.token)} (id ${t.id}) logit ${formatValue(t.logit)}` },
          children: [
            el("span", { className: "lw-token", text: visibleToken(t.token) }),
            el("span", { className: "lw-top-prob", text: ` ${(t.prob * 100).toFixed(1)}%` }),
          ],
        }),
      ),
    );
  }
}
