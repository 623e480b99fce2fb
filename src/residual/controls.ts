/**
 * The explorer's controls: view tabs, prompts box, answer / incorrect token pickers,
 * prompt selector (mean or one prompt), sort order and the all-heads switch. Pure DOM:
 * the view wires the events.
 */
import { button, el } from "../shared/dom";
import { visibleToken } from "../shared/tokens";

export const MEAN = "mean";

function labelled(text: string, control: HTMLElement): HTMLLabelElement {
  return el("label", { className: "lw-res-field", children: [el("span", { text }), control] });
}

export class Controls {
  readonly node: HTMLDivElement;
  readonly tabs: HTMLDivElement;
  readonly prompts: HTMLTextAreaElement;
  readonly run: HTMLButtonElement;
  readonly answer: HTMLInputElement;
  readonly incorrect: HTMLInputElement;
  readonly apply: HTMLButtonElement;
  readonly current: HTMLSpanElement;
  readonly promptSelect: HTMLSelectElement;
  readonly sort: HTMLSelectElement;
  readonly allHeads: HTMLInputElement;

  constructor() {
    this.tabs = el("div", {
      testid: "lw-res-tabs",
      className: "lw-res-tabs",
      attrs: { role: "tablist" },
      children: [
        button("lw-res-tab", "Attribution", { role: "tab", "data-view": "attribution" }, " lw-res-tab"),
        button("lw-res-tab", "Logit lens", { role: "tab", "data-view": "lens" }, " lw-res-tab"),
      ],
    });
    this.prompts = el("textarea", {
      testid: "lw-res-prompts",
      className: "lw-prompt lw-res-prompts",
      attrs: { rows: "2", spellcheck: "false", "aria-label": "Prompts, one per line" },
    });
    this.run = button("lw-res-run", "Run", { title: "Rerun the model on these prompts" });
    this.answer = el("input", { testid: "lw-res-answer", className: "lw-res-token-input", attrs: { type: "text", spellcheck: "false", "aria-label": "Answer token", placeholder: "answer, e.g. ␣Paris" } });
    this.incorrect = el("input", { testid: "lw-res-incorrect", className: "lw-res-token-input", attrs: { type: "text", spellcheck: "false", "aria-label": "Incorrect token", placeholder: "(none)" } });
    this.apply = button("lw-res-apply", "Apply");
    this.current = el("span", { testid: "lw-res-answer-current", className: "lw-res-current" });
    this.promptSelect = el("select", { testid: "lw-res-prompt-select", attrs: { "aria-label": "Prompt" } });
    this.sort = el("select", {
      testid: "lw-res-sort",
      attrs: { "aria-label": "Sort bars" },
      children: [
        el("option", { text: "by |value|", attrs: { value: "abs" } }),
        el("option", { text: "by value", attrs: { value: "value" } }),
        el("option", { text: "by layer", attrs: { value: "layer" } }),
      ],
    });
    this.allHeads = el("input", { testid: "lw-res-all-heads", attrs: { type: "checkbox" } });
    this.node = el("div", {
      className: "lw-controls lw-res-controls",
      children: [
        this.tabs,
        el("div", { className: "lw-controls-row", children: [this.prompts, this.run] }),
        el("div", {
          className: "lw-controls-row lw-res-wrap",
          children: [labelled("Answer", this.answer), labelled("Incorrect", this.incorrect), this.apply, this.current],
        }),
        el("div", {
          className: "lw-controls-row lw-res-wrap",
          children: [labelled("Show", this.promptSelect), labelled("Sort", this.sort), labelled("All heads", this.allHeads)],
        }),
      ],
    });
  }

  setView(view: string): void {
    for (const tab of this.tabs.children) {
      const b = tab as HTMLElement;
      b.setAttribute("aria-selected", String(b.dataset.view === view));
    }
  }

  /** Show the kernel's prompts unless the user is editing them. */
  setPrompts(prompts: readonly string[], editable: boolean): void {
    this.prompts.disabled = !editable;
    this.run.disabled = !editable;
    if (document.activeElement !== this.prompts) this.prompts.value = prompts.join("\n");
  }

  /** The prompts typed in the box: one per non-empty line. */
  typedPrompts(): string[] {
    return this.prompts.value.split("\n").filter((line) => line.trim() !== "");
  }

  /** Reflect the current answer / incorrect tokens (inputs keep what the user is typing). */
  setTokens(answer: readonly string[], incorrect: readonly string[], metric: string): void {
    const one = (xs: readonly string[]) => (xs.length && xs.every((x) => x === xs[0]) ? xs[0]! : "");
    if (document.activeElement !== this.answer) this.answer.value = one(answer);
    if (document.activeElement !== this.incorrect) this.incorrect.value = one(incorrect);
    const shown = (xs: readonly string[]) => [...new Set(xs)].map((x) => `"${visibleToken(x)}"`).join(" / ");
    this.current.textContent =
      metric === "logit_diff" ? `logit diff: ${shown(answer)} − ${shown(incorrect)}` : `logit of ${shown(answer)}`;
  }

  /** Mean over the prompts or one of them; with a single prompt there is nothing to choose. */
  setPromptOptions(prompts: readonly string[], n: number, selected: number | null): void {
    const single = n <= 1;
    const values = single ? [MEAN] : [MEAN, ...Array.from({ length: n }, (_, i) => String(i))];
    const current = [...this.promptSelect.options].map((o) => `${o.value}:${o.textContent}`).join("|");
    const texts = single
      ? [`the prompt: ${short(prompts[0] ?? "")}`]
      : [`mean of ${n} prompts`, ...values.slice(1).map((v, i) => `prompt ${v}: ${short(prompts[i] ?? "")}`)];
    this.promptSelect.disabled = single;
    if (current !== values.map((v, i) => `${v}:${texts[i]}`).join("|")) {
      this.promptSelect.replaceChildren(...values.map((v, i) => el("option", { text: texts[i]!, attrs: { value: v } })));
    }
    this.promptSelect.value = selected === null || single ? MEAN : String(selected);
  }
}

function short(text: string): string {
  const t = text.replace(/\s+/g, " ").trim();
  return t.length > 40 ? `${t.slice(0, 39)}…` : t;
}
