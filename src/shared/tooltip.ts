/** One tooltip per widget: lines of text (textContent), positioned near the pointer. */
import { el } from "./dom";

export class Tooltip {
  readonly node: HTMLDivElement;

  constructor(private readonly host: HTMLElement) {
    this.node = el("div", { testid: "lw-tooltip", className: "lw-tooltip", attrs: { role: "tooltip" } });
    this.node.hidden = true;
    host.append(this.node);
  }

  /** Show `lines` at client coordinates (x, y). */
  show(lines: string[], clientX: number, clientY: number): void {
    this.node.replaceChildren(...lines.map((text) => el("div", { text })));
    this.node.hidden = false;
    const box = this.host.getBoundingClientRect();
    this.node.style.left = `${clientX - box.left + 12}px`;
    this.node.style.top = `${clientY - box.top + 12}px`;
  }

  /** Show `lines` beside cell (row, col) of a grid canvas (keyboard navigation has no pointer). */
  showAtCell(canvas: HTMLCanvasElement, row: number, col: number, cellW: number, cellH: number, lines: string[]): void {
    const box = canvas.getBoundingClientRect();
    this.show(lines, box.left + (col + 0.5) * cellW, box.top + (row + 0.5) * cellH);
  }

  hide(): void {
    this.node.hidden = true;
  }

  get text(): string {
    return [...this.node.children].map((c) => c.textContent ?? "").join("\n");
  }
}
