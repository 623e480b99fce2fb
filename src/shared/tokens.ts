/**
 * Token display: untrusted strings, shown as text only, with whitespace made visible.
 */
import { el } from "./dom";

const VISIBLE: Record<string, string> = { " ": "·", "\n": "⏎", "\t": "→", "\r": "↵" };

/** `"Hello world\n"` -> `"Hello·world⏎"`; the empty token becomes `∅`. */
export function visibleToken(token: string): string {
  if (token === "") return "∅";
  return token.replace(/[ \n\t\r]/g, (c) => VISIBLE[c] ?? c);
}

export interface TokenStripOptions {
  className?: string;
  testid?: string;
  tokenTestid?: string;
}

/** Render `tokens` as `<span data-index>` children of a strip element (textContent only). */
export function tokenStrip(tokens: readonly string[], opts: TokenStripOptions = {}): HTMLDivElement {
  const strip = el("div", { testid: opts.testid ?? "lw-token-strip", className: opts.className ?? "lw-token-strip" });
  fillTokenStrip(strip, tokens, opts.tokenTestid ?? "lw-token");
  return strip;
}

export function fillTokenStrip(strip: HTMLElement, tokens: readonly string[], tokenTestid = "lw-token"): void {
  strip.replaceChildren(
    ...tokens.map((tok, i) =>
      el("span", {
        testid: tokenTestid,
        className: "lw-token",
        text: visibleToken(tok),
        attrs: { "data-index": String(i), title: `${i}: ${JSON.stringify(tok)}` },
      }),
    ),
  );
}

/** Index of the token element under an event target, or null. */
export function tokenIndexOf(target: EventTarget | null): number | null {
  const node = target instanceof Element ? target.closest("[data-index]") : null;
  if (!node) return null;
  const i = Number((node as HTMLElement).dataset.index);
  return Number.isInteger(i) ? i : null;
}
