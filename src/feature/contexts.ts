/**
 * The top-activating contexts: one row per context (`lw-feat-context`, `data-rank`,
 * `data-value`, `data-doc`): its top activation as text and the tokens around the top
 * token, each coloured by the feature's activation on it (shared activation strip).
 */
import type { ColorScale } from "../shared/colors";
import { activationStrip } from "../shared/activations";
import { el } from "../shared/dom";
import { formatValue } from "../shared/format";
import type { Context } from "./state";

export class ContextList {
  readonly node: HTMLOListElement;

  constructor() {
    this.node = el("ol", { testid: "lw-feat-contexts", className: "lw-feat-contexts" });
  }

  render(contexts: Context[], scale: ColorScale): void {
    this.node.dataset.count = String(contexts.length);
    this.node.replaceChildren(
      ...contexts.map((c, rank) =>
        el("li", {
          testid: "lw-feat-context",
          className: "lw-feat-context",
          attrs: { "data-rank": String(rank), "data-value": String(c.value), "data-doc": String(c.doc), "data-start": String(c.start) },
          children: [
            el("span", { testid: "lw-feat-context-value", className: "lw-feat-context-value", text: formatValue(c.value) }),
            activationStrip(c.tokens, c.acts, {
              highlight: c.top,
              scale,
              clippedLeft: c.clippedLeft,
              clippedRight: c.clippedRight,
              testid: "lw-feat-context-tokens",
            }),
          ],
        }),
      ),
    );
  }
}
