/**
 * The patch chips: one per patch, in order, each with an enable checkbox, its label and a
 * remove button. Keyboard: a focused chip toggles with Space/Enter and is removed with
 * Delete/Backspace. Labels are text only.
 */
import { el } from "../shared/dom";
import type { Disposer } from "../shared/events";
import type { Chip } from "./state";

export interface ChipHandlers {
  remove(id: number): void;
  toggle(id: number, enabled: boolean): void;
}

export class ChipList {
  readonly node: HTMLDivElement;
  private readonly list: HTMLDivElement;
  private readonly empty: HTMLSpanElement;

  constructor(disposer: Disposer, private readonly handlers: ChipHandlers, clear: () => void) {
    this.list = el("div", { className: "lw-chip-list", attrs: { role: "list", "data-lm-suppress-shortcuts": "true" } });
    this.empty = el("span", { className: "lw-muted", text: "No patches yet: drag clean cells onto the corrupted grid." });
    const clearButton = el("button", { testid: "lw-clear-patches", className: "lw-button", text: "Clear all", attrs: { type: "button" } });
    disposer.listen(clearButton, "click", clear);
    this.node = el("div", { testid: "lw-chips", className: "lw-chips", children: [this.list, this.empty, clearButton] });
    disposer.listen(this.list, "click", (ev) => this.onClick(ev));
    disposer.listen(this.list, "change", (ev) => this.onChange(ev));
    disposer.listen(this.list, "keydown", (ev) => this.onKey(ev));
  }

  render(chips: Chip[]): void {
    const focused = (document.activeElement as HTMLElement | null)?.closest?.("[data-testid='lw-chip']") as HTMLElement | null;
    const focusId = focused && this.list.contains(focused) ? focused.dataset.id : undefined;
    this.list.replaceChildren(...chips.map((c) => this.chip(c)));
    this.empty.hidden = chips.length > 0;
    this.node.dataset.count = String(chips.length);
    if (focusId !== undefined) {
      const again = [...this.list.children].find((n) => (n as HTMLElement).dataset.id === focusId) as HTMLElement | undefined;
      (again ?? (this.list.lastElementChild as HTMLElement | null))?.focus();
    }
  }

  private chip(c: Chip): HTMLDivElement {
    const toggle = el("input", { testid: "lw-chip-toggle", attrs: { type: "checkbox", "aria-label": `Enable ${c.label}`, tabindex: "-1" } });
    toggle.checked = c.enabled;
    const remove = el("button", { testid: "lw-chip-remove", className: "lw-chip-remove", text: "×", attrs: { type: "button", "aria-label": `Remove ${c.label}`, tabindex: "-1" } });
    return el("div", {
      testid: "lw-chip",
      className: "lw-chip",
      attrs: {
        role: "listitem",
        tabindex: "0",
        title: `${c.label}\nSpace: enable/disable · Delete: remove`,
        "data-id": String(c.id),
        "data-enabled": String(c.enabled),
        "data-mode": c.mode,
        "data-act": c.act,
      },
      children: [toggle, el("span", { testid: "lw-chip-label", className: "lw-chip-label", text: c.label }), remove],
    });
  }

  private idOf(target: EventTarget | null): number | null {
    const chip = target instanceof Element ? (target.closest("[data-testid='lw-chip']") as HTMLElement | null) : null;
    const id = chip ? Number(chip.dataset.id) : NaN;
    return Number.isInteger(id) ? id : null;
  }

  private onClick(ev: MouseEvent): void {
    const target = ev.target as HTMLElement;
    const id = this.idOf(target);
    if (id !== null && target.dataset.testid === "lw-chip-remove") this.handlers.remove(id);
  }

  private onChange(ev: Event): void {
    const target = ev.target as HTMLInputElement;
    const id = this.idOf(target);
    if (id !== null && target.dataset.testid === "lw-chip-toggle") this.handlers.toggle(id, target.checked);
  }

  private onKey(ev: KeyboardEvent): void {
    const target = ev.target as HTMLElement;
    if (target.dataset.testid !== "lw-chip") return;
    const id = this.idOf(target);
    if (id === null) return;
    if (ev.key === "Delete" || ev.key === "Backspace") {
      ev.preventDefault();
      const next = (target.nextElementSibling ?? target.previousElementSibling) as HTMLElement | null;
      next?.focus();
      this.handlers.remove(id);
    } else if (ev.key === " " || ev.key === "Enter") {
      ev.preventDefault();
      this.handlers.toggle(id, target.dataset.enabled !== "true");
    }
  }
}
