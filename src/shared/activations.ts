/**
 * Token strips coloured by an activation (SAE features: the feature dashboard's contexts,
 * the residual explorer's feature detail) and ranked token lists (the tokens a direction
 * promotes / suppresses). Token strings are untrusted: text only, whitespace made visible.
 *
 * Each token is a `lw-token` span with `data-index`, `data-act` (the value) and a `title`;
 * with `values: true` the value is also printed under the token, so nothing is hover-only.
 */
import { makeScale, textOn, type ColorScale } from "./colors";
import { el } from "./dom";
import { injectStyleOnce } from "./styles";
import { formatValue } from "./format";
import { visibleToken } from "./tokens";

export interface StripOptions {
  /** Index of the token to outline (`lw-hl`), e.g. the top-activating one. */
  highlight?: number | null;
  /** Print each value under its token. */
  values?: boolean;
  /** Scale for the colours; default sequential 0..max(acts). */
  scale?: ColorScale;
  /** Marks before / after the strip when the shown tokens are a slice. */
  clippedLeft?: boolean;
  clippedRight?: boolean;
  testid?: string;
}

/** Sequential 0..max scale for non-negative activations (max 1 when all are zero). */
export function activationScale(max: number): ColorScale {
  return makeScale("sequential", 0, Number.isFinite(max) && max > 0 ? max : 1);
}

/** A `lw-token-strip` of `tokens`, each coloured by its value in `acts`. */
export function activationStrip(tokens: readonly string[], acts: ArrayLike<number>, opts: StripOptions = {}): HTMLDivElement {
  let max = 0;
  for (let i = 0; i < acts.length; i++) if (Number.isFinite(acts[i]!)) max = Math.max(max, acts[i]!);
  const scale = opts.scale ?? activationScale(max);
  const strip = el("div", { testid: opts.testid ?? "lw-act-strip", className: "lw-token-strip lw-act-strip" });
  const children: Node[] = [];
  if (opts.clippedLeft) children.push(el("span", { className: "lw-act-clip", text: "…" }));
  tokens.forEach((tok, i) => {
    const v = acts[i] ?? NaN;
    const shown = visibleToken(tok);
    const span = el("span", {
      testid: "lw-token",
      className: opts.values ? "lw-token lw-act-token" : "lw-token",
      attrs: { "data-index": String(i), "data-act": String(v), title: `${i}: ${JSON.stringify(tok)} · ${formatValue(v)}` },
    });
    if (opts.values) {
      span.append(el("span", { className: "lw-act-text", text: shown }), el("span", { testid: "lw-act-value", className: "lw-act-value", text: v > 0 ? formatValue(v) : "0" }));
    } else {
      span.textContent = shown;
    }
    if (v > 0) {
      span.style.backgroundColor = scale.color(v);
      span.style.color = textOn(scale.rgba(v));
    }
    if (i === opts.highlight) span.classList.add("lw-hl");
    children.push(span);
  });
  if (opts.clippedRight) children.push(el("span", { className: "lw-act-clip", text: "…" }));
  strip.replaceChildren(...children);
  return strip;
}

/** Fill an `ol` with ranked tokens and their values (`testid` on each `li`). */
export function fillTokenList(list: HTMLOListElement, tokens: readonly string[], values: ArrayLike<number>, testid: string): void {
  list.replaceChildren(
    ...tokens.map((tok, i) =>
      el("li", {
        testid,
        className: "lw-act-list-item",
        attrs: { "data-value": String(values[i] ?? NaN), "data-token": tok, title: JSON.stringify(tok) },
        children: [el("span", { className: "lw-token", text: visibleToken(tok) }), el("span", { className: "lw-act-list-value", text: formatValue(values[i] ?? NaN) })],
      }),
    ),
  );
}

const CSS = `
.lw-act-strip { align-items: flex-end; }
.lw-act-token { display: inline-flex; flex-direction: column; align-items: center; }
.lw-act-value { font-size: 9px; opacity: 0.85; }
.lw-act-clip { color: var(--jp-ui-font-color2, #616161); }
.lw-act-list { margin: 0; padding-left: 22px; font-family: var(--jp-code-font-family, monospace); }
.lw-act-list-item { display: flex; gap: 8px; justify-content: space-between; min-width: 150px; }
`;

/** Add the strip / list CSS to the document once. */
export function injectActivationStyles(doc: Document = document): void {
  injectStyleOnce("lenswidget-activation-styles", CSS, doc);
}
