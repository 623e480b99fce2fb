/**
 * Controls above the grids: activation, head position and prompt selects, the editable
 * prompts (when the patcher was built from one prompt pair) and the two aligned token rows
 * (clean over corrupted, differing positions marked; click a token to patch heads at it).
 */
import { el } from "../shared/dom";
import type { Disposer } from "../shared/events";
import { visibleToken } from "../shared/tokens";

export interface ControlHandlers {
  act(value: string): void;
  position(value: number | null): void;
  prompt(index: number): void;
  applyPrompts(clean: string, corrupted: string): void;
}

function option(value: string, text: string): HTMLOptionElement {
  const o = el("option", { text });
  o.value = value;
  return o;
}

export class Controls {
  readonly node: HTMLDivElement;
  readonly actSelect: HTMLSelectElement;
  readonly positionSelect: HTMLSelectElement;
  readonly promptSelect: HTMLSelectElement;
  private readonly positionLabel: HTMLLabelElement;
  private readonly promptLabel: HTMLLabelElement;
  private readonly cleanRow: HTMLDivElement;
  private readonly corruptedRow: HTMLDivElement;
  private readonly prompts: HTMLDivElement;
  private readonly cleanPrompt: HTMLTextAreaElement;
  private readonly corruptedPrompt: HTMLTextAreaElement;

  constructor(disposer: Disposer, private readonly handlers: ControlHandlers) {
    this.actSelect = el("select", { testid: "lw-act-select", attrs: { "aria-label": "Activation" } });
    this.positionSelect = el("select", { testid: "lw-head-position", attrs: { "aria-label": "Head position" } });
    this.promptSelect = el("select", { testid: "lw-prompt-select", attrs: { "aria-label": "Prompt" } });
    this.positionLabel = el("label", { className: "lw-inline", children: [document.createTextNode("at "), this.positionSelect] });
    this.promptLabel = el("label", { className: "lw-inline", children: [document.createTextNode("prompt "), this.promptSelect] });
    disposer.listen(this.actSelect, "change", () => handlers.act(this.actSelect.value));
    disposer.listen(this.positionSelect, "change", () => {
      const v = this.positionSelect.value;
      handlers.position(v === "" ? null : Number(v));
    });
    disposer.listen(this.promptSelect, "change", () => handlers.prompt(Number(this.promptSelect.value)));

    this.cleanRow = el("div", { testid: "lw-clean-tokens", className: "lw-token-row" });
    this.corruptedRow = el("div", { testid: "lw-corrupted-tokens", className: "lw-token-row" });
    for (const row of [this.cleanRow, this.corruptedRow]) {
      disposer.listen(row, "click", (ev) => this.onTokenClick(ev));
    }
    this.cleanPrompt = el("textarea", { testid: "lw-clean-prompt", className: "lw-prompt", attrs: { rows: "1", "aria-label": "Clean prompt" } });
    this.corruptedPrompt = el("textarea", { testid: "lw-corrupted-prompt", className: "lw-prompt", attrs: { rows: "1", "aria-label": "Corrupted prompt" } });
    const apply = el("button", { testid: "lw-apply-prompts", className: "lw-button", text: "Apply prompts", attrs: { type: "button" } });
    disposer.listen(apply, "click", () => handlers.applyPrompts(this.cleanPrompt.value, this.corruptedPrompt.value));
    this.prompts = el("div", {
      className: "lw-patch-prompts",
      children: [
        el("label", { className: "lw-prompt-label", children: [document.createTextNode("clean"), this.cleanPrompt] }),
        el("label", { className: "lw-prompt-label", children: [document.createTextNode("corrupted"), this.corruptedPrompt] }),
        apply,
      ],
    });
    this.node = el("div", {
      className: "lw-controls",
      children: [
        el("div", {
          className: "lw-controls-row",
          children: [el("label", { className: "lw-inline", children: [document.createTextNode("activation "), this.actSelect] }), this.positionLabel, this.promptLabel],
        }),
        this.prompts,
        el("div", {
          className: "lw-token-rows",
          children: [
            el("span", { className: "lw-token-row-label", text: "clean" }),
            this.cleanRow,
            el("span", { className: "lw-token-row-label", text: "corrupted" }),
            this.corruptedRow,
          ],
        }),
      ],
    });
  }

  setActs(acts: string[], labels: Record<string, string>, current: string): void {
    const same = [...this.actSelect.options].map((o) => o.value).join() === acts.join();
    if (!same) this.actSelect.replaceChildren(...acts.map((a) => option(a, labels[a] ? `${a} — ${labels[a]}` : a)));
    this.actSelect.value = current;
  }

  setPositions(tokens: string[], current: number | null, shown: boolean): void {
    this.positionSelect.replaceChildren(
      option("", "every position"),
      ...tokens.map((t, i) => option(String(i), `${i}: ${visibleToken(t)}`)),
    );
    this.positionSelect.value = current === null ? "" : String(current);
    this.positionLabel.hidden = !shown;
  }

  setPrompts(batch: number, current: number): void {
    if (this.promptSelect.options.length !== batch) {
      this.promptSelect.replaceChildren(...Array.from({ length: batch }, (_, i) => option(String(i), String(i))));
    }
    this.promptSelect.value = String(current);
    this.promptLabel.hidden = batch <= 1;
  }

  setEditable(editable: boolean, clean: string, corrupted: string): void {
    this.prompts.hidden = !editable;
    if (document.activeElement !== this.cleanPrompt) this.cleanPrompt.value = clean;
    if (document.activeElement !== this.corruptedPrompt) this.corruptedPrompt.value = corrupted;
  }

  /** The two aligned token rows; `selected` is the head position (null: none). */
  setTokens(clean: string[], corrupted: string[], differs: boolean[], selected: number | null, clickable: boolean): void {
    const fill = (row: HTMLDivElement, tokens: string[], testid: string) => {
      row.replaceChildren(
        ...tokens.map((tok, i) =>
          el("span", {
            testid,
            className: "lw-token",
            text: visibleToken(tok),
            attrs: {
              "data-index": String(i),
              "data-differs": String(!!differs[i]),
              "data-selected": String(selected === i),
              title: `${i}: ${JSON.stringify(tok)}`,
            },
          }),
        ),
      );
      row.dataset.clickable = String(clickable);
    };
    fill(this.cleanRow, clean, "lw-clean-token");
    fill(this.corruptedRow, corrupted, "lw-corrupted-token");
  }

  private onTokenClick(ev: MouseEvent): void {
    const row = (ev.currentTarget as HTMLElement | null) ?? null;
    if (!row || row.dataset.clickable !== "true") return;
    const node = ev.target instanceof Element ? (ev.target.closest("[data-index]") as HTMLElement | null) : null;
    if (!node) return;
    const i = Number(node.dataset.index);
    if (!Number.isInteger(i)) return;
    this.handlers.position(node.dataset.selected === "true" ? null : i);
  }
}
