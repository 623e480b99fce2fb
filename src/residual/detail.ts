/**
 * The selected head or neuron. A head shows its attention pattern (pattern.ts, the
 * attributed position's row highlighted), the attention
 * from that position over the prompt's tokens, and its direct effect on the logits: the
 * tokens it promotes and suppresses most. A neuron shows its activation and effect.
 */
import { textOn, type ColorScale } from "../shared/colors";
import { el } from "../shared/dom";
import { formatValue } from "../shared/format";
import { visibleToken } from "../shared/tokens";
import { HeadPattern } from "./pattern";
import type { DetailData } from "./state";

export class DetailView {
  readonly node: HTMLDivElement;
  readonly pattern: HeadPattern;
  private readonly title: HTMLDivElement;
  private readonly from: HTMLDivElement;
  private readonly promoted: HTMLOListElement;
  private readonly suppressed: HTMLOListElement;
  private readonly patternBox: HTMLDivElement;
  data: DetailData | null = null;

  constructor(colors: () => { accent: string; dim: string; fg: string }) {
    this.pattern = new HeadPattern(colors);
    this.title = el("div", { testid: "lw-res-detail-title", className: "lw-res-detail-title" });
    this.from = el("div", { testid: "lw-res-attn-from", className: "lw-token-strip" });
    this.promoted = el("ol", { testid: "lw-res-promoted", className: "lw-res-top" });
    this.suppressed = el("ol", { testid: "lw-res-suppressed", className: "lw-res-top" });
    this.patternBox = el("div", {
      className: "lw-res-pattern",
      children: [el("div", { className: "lw-res-caption", text: "Attention from the attributed position" }), this.from, this.pattern.node],
    });
    this.node = el("div", {
      testid: "lw-res-detail",
      className: "lw-res-detail",
      children: [
        this.title,
        this.patternBox,
        el("div", {
          className: "lw-res-effects",
          children: [
            el("div", { children: [el("div", { className: "lw-res-caption", text: "Promotes" }), this.promoted] }),
            el("div", { children: [el("div", { className: "lw-res-caption", text: "Suppresses" }), this.suppressed] }),
          ],
        }),
      ],
    });
    this.node.hidden = true;
  }

  render(d: DetailData | null, patternScale: ColorScale, prompts: number): void {
    this.data = d;
    this.node.hidden = !d;
    if (!d) {
      this.node.dataset.kind = "";
      this.node.dataset.label = "";
      return;
    }
    this.node.dataset.kind = d.kind;
    this.node.dataset.label = d.label;
    const where = prompts > 1 ? ` · prompt ${d.prompt}` : "";
    const act = d.kind === "neuron" && d.activation !== null ? ` · activation ${formatValue(d.activation)}` : "";
    this.title.textContent = `${d.label}: ${formatValue(d.value)}${act}${where}`;
    this.patternBox.hidden = d.kind !== "head";
    if (d.kind === "head") this.renderPattern(d, patternScale);
    fillTop(this.promoted, d.promoted, d.promotedValues);
    fillTop(this.suppressed, d.suppressed, d.suppressedValues);
  }

  private renderPattern(d: DetailData, scale: ColorScale): void {
    const n = d.tokens.length;
    const ok = d.pattern.shape.length === 2 && d.pattern.shape[0] === n && d.pattern.shape[1] === n;
    this.pattern.highlight = ok && d.pos < n ? d.pos : null;
    this.pattern.show(ok ? { layer: d.layer, head: d.index, name: d.label, tokens: d.tokens, values: d.pattern.data } : null, scale);
    this.from.replaceChildren(
      ...d.tokens.map((tok, j) => {
        const v = d.row[j] ?? NaN;
        const span = el("span", {
          testid: "lw-token",
          className: "lw-token",
          text: visibleToken(tok),
          attrs: { "data-index": String(j), "data-value": String(v), title: `${j}: ${JSON.stringify(tok)} ← ${formatValue(v)}` },
        });
        span.style.backgroundColor = scale.color(v);
        span.style.color = textOn(scale.rgba(v));
        if (j === d.pos) span.classList.add("lw-hl");
        return span;
      }),
    );
  }
}

function fillTop(list: HTMLOListElement, tokens: string[], values: Float32Array): void {
  list.replaceChildren(
    ...tokens.map((tok, i) =>
      el("li", {
        testid: "lw-res-top-token",
        className: "lw-res-top-token",
        attrs: { "data-value": String(values[i] ?? NaN), title: JSON.stringify(tok) },
        children: [el("span", { className: "lw-token", text: visibleToken(tok) }), el("span", { className: "lw-res-top-value", text: formatValue(values[i] ?? NaN) })],
      }),
    ),
  );
}
