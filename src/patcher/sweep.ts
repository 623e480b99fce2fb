/**
 * Sweep controls: run the exact sweep of the shown grid (background, with progress and a
 * cancel button) or the attribution estimate, and show/hide the overlay.
 */
import { el } from "../shared/dom";
import type { Disposer } from "../shared/events";

export interface SweepHandlers {
  exact(): void;
  estimate(): void;
  cancel(): void;
  overlay(shown: boolean): void;
}

const STATUS: Record<string, string> = {
  idle: "",
  running: "sweeping…",
  done: "sweep done",
  cancelled: "sweep cancelled (partial result)",
  error: "sweep failed",
};

export class SweepPanel {
  readonly node: HTMLDivElement;
  readonly overlayToggle: HTMLInputElement;
  private readonly exactButton: HTMLButtonElement;
  private readonly estimateButton: HTMLButtonElement;
  private readonly cancelButton: HTMLButtonElement;
  private readonly bar: HTMLProgressElement;
  private readonly status: HTMLSpanElement;

  constructor(disposer: Disposer, handlers: SweepHandlers) {
    const button = (testid: string, text: string, title: string, fn: () => void) => {
      const b = el("button", { testid, className: "lw-button", text, attrs: { type: "button", title } });
      disposer.listen(b, "click", fn);
      return b;
    };
    this.exactButton = button("lw-sweep-exact", "Sweep", "Patch every cell of this grid on its own (exact, patching module)", handlers.exact);
    this.estimateButton = button("lw-sweep-estimate", "Estimate", "Attribution patching: a gradient estimate of the sweep, at once", handlers.estimate);
    this.cancelButton = button("lw-sweep-cancel", "Cancel", "Stop the running sweep", handlers.cancel);
    this.bar = el("progress", { testid: "lw-sweep-progress", className: "lw-sweep-progress" });
    this.status = el("span", { testid: "lw-sweep-status", className: "lw-muted" });
    this.overlayToggle = el("input", { testid: "lw-overlay-toggle", attrs: { type: "checkbox", "aria-label": "Show the sweep overlay" } });
    this.overlayToggle.checked = true;
    disposer.listen(this.overlayToggle, "change", () => handlers.overlay(this.overlayToggle.checked));
    const overlayLabel = el("label", { className: "lw-inline", children: [this.overlayToggle, document.createTextNode(" overlay")] });
    this.node = el("div", {
      className: "lw-controls-row lw-sweep",
      children: [this.exactButton, this.estimateButton, this.cancelButton, this.bar, this.status, overlayLabel],
    });
  }

  update(state: string, done: number, total: number, note: string): void {
    const running = state === "running";
    this.node.dataset.state = state;
    this.status.dataset.state = state;
    this.status.textContent = [STATUS[state] ?? state, note].filter(Boolean).join(" · ");
    this.bar.max = Math.max(1, total);
    this.bar.value = Math.min(done, Math.max(1, total));
    this.bar.dataset.done = String(done);
    this.bar.dataset.total = String(total);
    this.bar.hidden = !running && state !== "cancelled";
    this.cancelButton.disabled = !running;
    this.exactButton.disabled = running;
    this.estimateButton.disabled = running;
  }
}
