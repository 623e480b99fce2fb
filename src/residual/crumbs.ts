/**
 * Breadcrumbs of the drill path: "All components › 3_attn_out › L3H2". Each crumb is a
 * `lw-res-crumb` button with `data-depth` (0 = all components); the last one is current.
 */
import { button, el } from "../shared/dom";

export const ROOT_CRUMB = "All components";

export class Breadcrumbs {
  readonly node: HTMLElement;

  constructor() {
    this.node = el("nav", { testid: "lw-res-breadcrumbs", className: "lw-res-crumbs", attrs: { "aria-label": "Drill path" } });
  }

  render(path: readonly string[]): void {
    const names = [ROOT_CRUMB, ...path];
    const parts: Node[] = [];
    names.forEach((name, depth) => {
      if (depth > 0) parts.push(el("span", { className: "lw-res-crumb-sep", text: "›" }));
      const current = depth === names.length - 1;
      parts.push(
        button("lw-res-crumb", name, { "data-depth": String(depth), "data-current": String(current), ...(current ? { "aria-current": "page" } : {}) }, " lw-res-crumb"),
      );
    });
    this.node.replaceChildren(...parts);
  }

  /** The depth of the crumb under an event target, or null. */
  static depthOf(target: EventTarget | null): number | null {
    const node = target instanceof Element ? target.closest('[data-testid="lw-res-crumb"]') : null;
    const depth = node ? Number((node as HTMLElement).dataset.depth) : NaN;
    return Number.isInteger(depth) ? depth : null;
  }
}
