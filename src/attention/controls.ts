/**
 * Layer selector, view options (per-head scale, hide sink, gamma) and the prompt box
 * (debounced; the kernel reruns the model on `prompt`).
 */
import type { ViewOptions } from "../shared/codeColors";
import { el } from "../shared/dom";

export const GAMMAS = [1, 0.7, 0.5, 0.3];

export class Controls {
  readonly node: HTMLDivElement;
  readonly select: HTMLSelectElement;
  readonly prompt: HTMLTextAreaElement;
  readonly perHead: HTMLInputElement;
  readonly hideSink: HTMLInputElement;
  readonly gamma: HTMLSelectElement;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor() {
    this.select = el("select", { testid: "lw-layer-select", className: "lw-layer-select", attrs: { "aria-label": "Layer" } });
    this.prompt = el("textarea", {
      testid: "lw-prompt",
      className: "lw-prompt",
      attrs: { rows: "2", spellcheck: "false", "aria-label": "Prompt", placeholder: "Type a prompt; the model reruns as you type" },
    });
    this.perHead = el("input", { testid: "lw-opt-per-head", attrs: { type: "checkbox" } });
    this.hideSink = el("input", { testid: "lw-opt-hide-sink", attrs: { type: "checkbox" } });
    this.gamma = el("select", { testid: "lw-opt-gamma", attrs: { "aria-label": "Gamma" } });
    this.gamma.replaceChildren(...GAMMAS.map((g) => el("option", { text: `γ ${g}`, attrs: { value: String(g) } })));
    const check = (input: HTMLInputElement, text: string, title: string) =>
      el("label", { className: "lw-opt", attrs: { title }, children: [input, document.createTextNode(text)] });
    this.node = el("div", {
      className: "lw-controls",
      children: [
        el("div", {
          className: "lw-controls-row",
          children: [
            el("label", { text: "Layer" }),
            this.select,
            check(this.perHead, "per-head scale", "Scale each head to its own maximum"),
            check(this.hideSink, "hide sink", "Blank position 0 (BOS / attention sink) and leave it out of the scale"),
            el("label", { className: "lw-opt", attrs: { title: "Gamma < 1 brightens small values" }, children: [this.gamma] }),
          ],
        }),
        this.prompt,
      ],
    });
  }

  setLayers(layers: number[], selected: number | null): void {
    const current = [...this.select.options].map((o) => o.value).join(",");
    if (current !== layers.join(",")) {
      this.select.replaceChildren(...layers.map((l) => el("option", { text: `Layer ${l}`, attrs: { value: String(l) } })));
    }
    if (selected !== null) this.select.value = String(selected);
  }

  setOptions(o: ViewOptions): void {
    this.perHead.checked = o.normalize === "head";
    this.hideSink.checked = o.hideSink;
    const value = String(o.gamma);
    if (![...this.gamma.options].some((opt) => opt.value === value)) {
      this.gamma.append(el("option", { text: `γ ${value}`, attrs: { value } }));
    }
    this.gamma.value = value;
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
