/**
 * Element construction without HTML parsing: text only ever goes through `textContent`.
 */
export interface ElOptions {
  testid?: string;
  className?: string;
  text?: string;
  attrs?: Record<string, string>;
  children?: Node[];
}

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  opts: ElOptions = {},
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (opts.testid) node.dataset.testid = opts.testid;
  if (opts.className) node.className = opts.className;
  if (opts.text !== undefined) node.textContent = opts.text;
  for (const [k, v] of Object.entries(opts.attrs ?? {})) node.setAttribute(k, v);
  for (const child of opts.children ?? []) node.append(child);
  return node;
}

/** A `lw-button` (`type="button"`), more classes after `lw-button`, more attributes after `type`. */
export function button(testid: string, text: string, attrs: Record<string, string> = {}, classes = ""): HTMLButtonElement {
  return el("button", { testid, className: `lw-button${classes}`, text, attrs: { type: "button", ...attrs } });
}

/** Replace all children of `node`. */
export function setChildren(node: Element, children: Node[]): void {
  node.replaceChildren(...children);
}

/** Coordinates of a mouse event relative to `target`'s box (CSS pixels). */
export function localPoint(target: Element, ev: MouseEvent): { x: number; y: number } {
  const rect = target.getBoundingClientRect();
  return { x: ev.clientX - rect.left, y: ev.clientY - rect.top };
}
