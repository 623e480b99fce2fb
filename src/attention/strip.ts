/**
 * The prompt's tokens as a strip. Updated in place (only tokens that changed are touched),
 * so an edit at the end of a long prompt does not rebuild it. Highlighting a token shows
 * the attention from it; it works by hover, by click (pins it) and by keyboard (the strip
 * is focusable: arrow keys move, Enter pins, Escape clears).
 */
import { textOn, type ColorScale } from "../shared/colors";
import { el } from "../shared/dom";
import { visibleToken } from "../shared/tokens";

let instances = 0;

export class TokenStrip {
  readonly node: HTMLDivElement;
  private readonly id = `lw-strip-${++instances}`;
  private tokens: string[] = [];
  cursor: number | null = null;

  constructor() {
    this.node = el("div", {
      testid: "lw-token-strip",
      className: "lw-token-strip",
      attrs: { tabindex: "0", role: "listbox", "aria-label": "Tokens: arrow keys move, Enter pins the highlight, Escape clears" },
    });
  }

  get length(): number {
    return this.tokens.length;
  }

  /** Show `tokens`, touching only the spans whose token changed. */
  update(tokens: string[]): void {
    const spans = this.node.children;
    const keep = Math.min(tokens.length, spans.length);
    for (let i = 0; i < keep; i++) {
      if (tokens[i] !== this.tokens[i]) fill(spans[i] as HTMLSpanElement, tokens[i]!, i);
    }
    while (this.node.children.length > tokens.length) this.node.lastElementChild!.remove();
    const add: HTMLSpanElement[] = [];
    for (let i = keep; i < tokens.length; i++) {
      const span = el("span", { testid: "lw-token", className: "lw-token", attrs: { role: "option", id: `${this.id}-${i}` } });
      fill(span, tokens[i]!, i);
      add.push(span);
    }
    if (add.length) this.node.append(...add);
    this.tokens = tokens.slice();
    if (this.cursor !== null && this.cursor >= tokens.length) this.setCursor(null);
  }

  /** Colour the tokens by `row` (attention from `focus`) under `scale`, or clear. */
  paint(focus: number | null, row: Float32Array | null, scale: ColorScale): void {
    [...this.node.children].forEach((child, j) => {
      const span = child as HTMLElement;
      span.classList.toggle("lw-hl", focus === j);
      if (row) {
        const v = row[j] ?? NaN;
        span.style.backgroundColor = scale.color(v);
        span.style.color = textOn(scale.rgba(v));
      } else if (span.style.backgroundColor) {
        span.style.backgroundColor = "";
        span.style.color = "";
      }
    });
  }

  setCursor(i: number | null): void {
    const prev = this.cursor;
    if (prev !== null) this.node.children[prev]?.removeAttribute("aria-selected");
    this.cursor = i;
    const span = i === null ? undefined : this.node.children[i];
    if (span) {
      span.setAttribute("aria-selected", "true");
      this.node.setAttribute("aria-activedescendant", span.id);
      if (typeof (span as HTMLElement).scrollIntoView === "function") (span as HTMLElement).scrollIntoView({ block: "nearest", inline: "nearest" });
    } else {
      this.node.removeAttribute("aria-activedescendant");
    }
  }
}

function fill(span: HTMLSpanElement, tok: string, i: number): void {
  span.textContent = visibleToken(tok);
  span.title = `${i}: ${JSON.stringify(tok)}`;
  span.dataset.index = String(i);
}
