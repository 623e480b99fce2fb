/** Layer selector and prompt box (debounced; the kernel reruns the model on `prompt`). */
import { el } from "../shared/dom";

export class Controls {
  readonly node: HTMLDivElement;
  readonly select: HTMLSelectElement;
  readonly prompt: HTMLTextAreaElement;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor() {
    this.select = el("select", { testid: "lw-layer-select", className: "lw-layer-select", attrs: { "aria-label": "Layer" } });
    this.prompt = el("textarea", {
      testid: "lw-prompt",
      className: "lw-prompt",
      attrs: { rows: "2", spellcheck: "false", "aria-label": "Prompt", placeholder: "Type a prompt; the model reruns as you type" },
    });
    this.node = el("div", {
      className: "lw-controls",
      children: [el("div", { className: "lw-controls-row", children: [el("label", { text: "Layer" }), this.select]}), this.prompt],
    });
  }

  setLayers(layers: number[], selected: number | null): void {
    const current = [...this.select.options].map((o) => o.value).join(",");
    if (current !== layers.join(",")) {
      this.select.replaceChildren(...layers.map((l) => el("option", { text: `Layer ${l}`, attrs: { value: String(l) } })));
    }
    if (selected !== null) this.select.value = String(selected);
  }

  /** Show the kernel's prompt unless the user is editing it. */
  setPrompt(text: string, editable: boolean): void {
    this.prompt.disabled = !editable;
    if (typeof document !== "undefined" && document.activeElement === this.prompt) return;
    if (this.timer === null) this.prompt.value = text;
  }

  /** Run `fire` once typing has paused for `ms`. */
  debounce(ms: number, fire: () => void): void {
    this.cancel();
    this.timer = setTimeout(() => {
      this.timer = null;
      fire();
    }, Math.max(0, ms));
  }

  cancel(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}
