/** Colour legend: a vertical ramp with its min and max (`data-testid="lw-legend"`). */
import type { ColorScale } from "./colors";
import { el } from "./dom";
import { formatValue } from "./format";

export class Legend {
  readonly node: HTMLDivElement;
  private readonly ramp: HTMLCanvasElement;
  private readonly maxLabel: HTMLSpanElement;
  private readonly minLabel: HTMLSpanElement;

  constructor(private readonly height = 120) {
    this.ramp = el("canvas", { className: "lw-legend-ramp" });
    this.maxLabel = el("span", { testid: "lw-legend-max", className: "lw-legend-label" });
    this.minLabel = el("span", { testid: "lw-legend-min", className: "lw-legend-label" });
    this.node = el("div", {
      testid: "lw-legend",
      className: "lw-legend",
      children: [this.ramp, el("div", { className: "lw-legend-labels", children: [this.maxLabel, this.minLabel] })],
    });
  }

  update(scale: ColorScale): void {
    const d = this.node.dataset;
    d.scale = scale.kind;
    d.min = String(scale.min);
    d.max = String(scale.max);
    this.maxLabel.textContent = formatValue(scale.max);
    this.minLabel.textContent = formatValue(scale.min);
    this.ramp.width = 12;
    this.ramp.height = this.height;
    this.ramp.style.height = `${this.height}px`;
    const ctx = this.ramp.getContext("2d");
    if (!ctx) return;
    for (let i = 0; i < this.height; i++) {
      ctx.fillStyle = scale.color(scale.max - ((scale.max - scale.min) * i) / (this.height - 1));
      ctx.fillRect(0, i, 12, 1);
    }
  }
}
