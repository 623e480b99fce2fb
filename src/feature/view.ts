/**
 * SAE feature dashboard view: the feature picker, a progress bar while the kernel scans the
 * corpus, then the feature's summary, activation histogram, the tokens its decoder
 * direction promotes / suppresses, and its top-activating contexts.
 *
 * The first view of a widget that has not scanned yet sends `{"type": "compute"}`; the
 * kernel streams `{"type": "progress", done, total}` custom messages while it runs (they
 * reach the browser before the traits of the finished scan). The feature index is the
 * browser-writable `idx` trait. DOM contract: src/DOM.md (feature dashboard).
 */
import { activationScale, fillTokenList } from "../shared/activations";
import { el } from "../shared/dom";
import { formatValue } from "../shared/format";
import { Frame } from "../shared/frame";
import { getInt, getString } from "../shared/traits";
import type { Cleanup, RenderProps, WidgetModel } from "../shared/types";
import { ContextList } from "./contexts";
import { HistogramView } from "./histogram";
import { readContexts, readEffects, readHistogram, readProgress, readStatus, readSummary } from "./state";
import { injectFeatureStyles } from "./styles";

export class FeatureView {
  readonly frame: Frame;
  readonly idx: HTMLInputElement;
  readonly hist = new HistogramView();
  readonly contexts = new ContextList();
  private readonly saeText: HTMLSpanElement;
  private readonly progressBox: HTMLDivElement;
  private readonly progressBar: HTMLProgressElement;
  private readonly progressText: HTMLSpanElement;
  private readonly results: HTMLDivElement;
  private readonly summary: HTMLDivElement;
  private readonly promoted: HTMLOListElement;
  private readonly suppressed: HTMLOListElement;
  private asked = false;

  constructor(private readonly model: WidgetModel, host: HTMLElement) {
    injectFeatureStyles();
    this.frame = new Frame(model, host, "feature");
    const d = this.frame.disposer;
    this.idx = el("input", { testid: "lw-feat-idx", className: "lw-feat-idx", attrs: { type: "number", min: "0", step: "1", "aria-label": "Feature index" } });
    const prev = this.button("lw-feat-prev", "◀", "Previous feature", () => this.go(-1));
    const next = this.button("lw-feat-next", "▶", "Next feature", () => this.go(1));
    this.saeText = el("span", { testid: "lw-feat-sae", className: "lw-feat-muted" });
    this.progressBar = el("progress", { testid: "lw-feat-progress-bar" });
    this.progressText = el("span", { testid: "lw-feat-progress-text", className: "lw-feat-muted" });
    this.progressBox = el("div", { testid: "lw-feat-progress", className: "lw-feat-progress", attrs: { role: "status" }, children: [this.progressBar, this.progressText] });
    this.summary = el("div", { testid: "lw-feat-summary", className: "lw-feat-summary" });
    this.promoted = el("ol", { testid: "lw-feat-promoted", className: "lw-act-list" });
    this.suppressed = el("ol", { testid: "lw-feat-suppressed", className: "lw-act-list" });
    const effects = el("div", {
      testid: "lw-feat-effects",
      className: "lw-feat-effects",
      children: [
        el("div", { children: [el("div", { className: "lw-feat-caption", text: "Promotes (decoder direction → logits)" }), this.promoted] }),
        el("div", { children: [el("div", { className: "lw-feat-caption", text: "Suppresses" }), this.suppressed] }),
      ],
    });
    this.results = el("div", {
      testid: "lw-feat-results",
      className: "lw-feat-results",
      children: [
        this.summary,
        el("div", { className: "lw-feat-top", children: [this.hist.node, effects] }),
        el("div", { className: "lw-feat-caption", text: "Top-activating contexts (the top token outlined)" }),
        this.contexts.node,
      ],
    });
    const head = el("div", {
      className: "lw-feat-head",
      children: [el("span", { text: "Feature" }), prev, this.idx, next, this.saeText],
    });
    this.frame.body.append(el("div", { className: "lw-feat", children: [head, this.progressBox, this.results] }));

    d.listen(this.idx, "change", () => this.pick(this.idx.value));
    d.listen(this.idx, "keydown", (ev) => {
      if (ev.key === "Enter") this.pick(this.idx.value);
    });
    const f = this.frame;
    f.watch(["idx", "d_sae", "sae_label", "hook", "n_windows", "n_docs"], () => this.renderHead());
    f.watch(["status", "progress"], () => this.renderProgress());
    f.watch(["summary", "histogram", "contexts", "status"], () => this.renderResults());
    f.watch(["effects"], () => this.renderEffects());
    d.onModel(model, "msg:custom", (msg: unknown) => this.onMessage(msg));
    this.frame.watchTheme(() => this.renderResults());
    this.renderHead();
    this.renderProgress();
    this.renderResults();
    this.renderEffects();
    this.start();
  }

  // -- kernel traffic ---------------------------------------------------------------------
  private send(message: Record<string, unknown>): void {
    this.frame.send(message);
  }

  private setTrait(key: string, value: unknown): void {
    this.frame.update({ [key]: value });
  }

  /** Ask the kernel to scan the corpus once, when nobody has yet. */
  private start(): void {
    if (this.asked || readStatus(this.model) !== "pending") return;
    this.asked = true;
    this.send({ type: "compute" });
  }

  private onMessage(msg: unknown): void {
    const m = msg && typeof msg === "object" ? (msg as Record<string, unknown>) : null;
    if (!m || m.type !== "progress") return;
    const done = Number.isInteger(m.done) ? (m.done as number) : 0;
    const total = Number.isInteger(m.total) ? (m.total as number) : 0;
    this.showProgress("running", done, total);
  }

  private button(testid: string, text: string, label: string, fn: () => void): HTMLButtonElement {
    const b = el("button", { testid, className: "lw-button", text, attrs: { type: "button", title: label, "aria-label": label } });
    this.frame.disposer.listen(b, "click", fn);
    return b;
  }

  get dSae(): number {
    return getInt(this.model, "d_sae") ?? 0;
  }

  get current(): number {
    return getInt(this.model, "idx") ?? 0;
  }

  /** Show feature `text` (an integer; anything else puts the current index back). */
  pick(text: string): void {
    const v = Number(text.trim());
    if (!text.trim() || !Number.isInteger(v)) {
      this.idx.value = String(this.current);
      return;
    }
    if (v !== this.current) this.setTrait("idx", v);
  }

  private go(step: number): void {
    const n = this.dSae;
    if (n > 0) this.setTrait("idx", (((this.current + step) % n) + n) % n);
  }

  // -- rendering --------------------------------------------------------------------------------
  private renderHead(): void {
    this.idx.value = String(this.current);
    this.idx.max = String(Math.max(0, this.dSae - 1));
    const m = this.model;
    const windows = getInt(m, "n_windows") ?? 0;
    const docs = getInt(m, "n_docs") ?? 0;
    this.saeText.textContent = `of ${this.dSae} · ${getString(m, "sae_label") || getString(m, "hook")} · corpus: ${docs} strings, ${windows} windows`;
    this.saeText.title = getString(m, "hook");
  }

  private renderProgress(): void {
    const [done, total] = readProgress(this.model);
    this.showProgress(readStatus(this.model), done, total);
  }

  private showProgress(status: string, done: number, total: number): void {
    const running = status === "running" || status === "pending";
    const box = this.progressBox;
    box.hidden = !running;
    box.dataset.done = String(done);
    box.dataset.total = String(total);
    box.dataset.status = status;
    this.progressBar.max = Math.max(1, total);
    this.progressBar.value = Math.min(done, total);
    this.progressText.textContent = status === "pending" ? "waiting for the kernel…" : `scanning the corpus: ${done}/${total} windows`;
    this.frame.root.dataset.status = status;
  }

  private renderResults(): void {
    const status = readStatus(this.model);
    this.results.hidden = status !== "done";
    this.frame.root.dataset.status = status;
    if (status !== "done") return;
    const s = readSummary(this.model);
    this.summary.textContent = s
      ? `fires on ${(100 * s.frequency).toFixed(s.frequency < 0.01 ? 3 : 2)}% of ${s.total} tokens (${s.fired}) · max ${formatValue(s.max)} · mean when firing ${formatValue(s.mean)}`
      : "";
    if (s) {
      this.summary.dataset.frequency = String(s.frequency);
      this.summary.dataset.max = String(s.max);
      this.summary.dataset.fired = String(s.fired);
    }
    const scale = activationScale(s?.max ?? 0);
    let hist = null;
    try {
      hist = readHistogram(this.model);
      this.contexts.render(readContexts(this.model), scale);
    } catch (err) {
      this.frame.showError(`Could not decode the dashboard: ${(err as Error).message}`);
    }
    this.hist.render(hist, scale);
  }

  private renderEffects(): void {
    let e = null;
    try {
      e = readEffects(this.model);
    } catch (err) {
      this.frame.showError(`Could not decode the logit effects: ${(err as Error).message}`);
    }
    fillTokenList(this.promoted, e?.promoted ?? [], e?.promotedValues ?? new Float32Array(0), "lw-feat-effect-token");
    fillTokenList(this.suppressed, e?.suppressed ?? [], e?.suppressedValues ?? new Float32Array(0), "lw-feat-effect-token");
  }

  dispose(): void {
    this.frame.disposer.dispose();
  }
}

export function render({ model, el: host }: RenderProps): Cleanup {
  const view = new FeatureView(model, host);
  return () => view.dispose();
}
