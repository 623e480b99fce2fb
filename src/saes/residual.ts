/**
 * The residual explorer's SAE panel (lenswidget/widgets/residual/features.py): one button
 * per SAE (its hooked activation's direct attribution), then that SAE's top features by
 * attribution with the other features, decoder bias and error term (the same bar chart as
 * the components), then a feature's detail: its activation on every token of the prompt
 * (values printed under the tokens) and the tokens its decoder direction promotes and
 * suppresses. Clicks send `open_sae`, `open_feature` and `sae_back`.
 *
 * Loaded at run time (src/saes/index.ts): `residual(model, frame)` mounts the panel at the
 * end of the explorer's attribution view (`.lw-res-main`, hidden with it in the lens view).
 */
import { activationScale, activationStrip, fillTokenList, injectActivationStyles } from "../shared/activations";
import { divergingScale } from "../shared/colors";
import { el } from "../shared/dom";
import { formatValue } from "../shared/format";
import type { Frame } from "../shared/frame";
import { decodeOrEmpty } from "../shared/tensor";
import { getStrings } from "../shared/traits";
import type { WidgetModel } from "../shared/types";
import { BarChart } from "../residual/bars";

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === "object" && !Array.isArray(v) ? (v as Obj) : {});
const strs = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : []);
const num = (v: unknown): number => (typeof v === "number" ? v : NaN);
/** A decoded float vector; a malformed payload shows as empty. */
function vec(v: unknown): Float32Array {
  try {
    return decodeOrEmpty(v).data;
  } catch {
    return new Float32Array(0);
  }
}

export class FeaturePanel {
  readonly node: HTMLDivElement;
  readonly chart = new BarChart();
  private readonly list: HTMLDivElement;
  private readonly crumbs: HTMLElement;
  private readonly check: HTMLDivElement;
  private readonly detail: HTMLDivElement;

  constructor(private readonly model: WidgetModel, frame: Frame, private readonly send: (m: Obj) => void) {
    injectActivationStyles();
    this.chart.node.dataset.testid = "lw-res-sae-bars";
    this.list = el("div", { testid: "lw-res-sae-list", className: "lw-controls-row lw-res-wrap" });
    this.crumbs = el("nav", { testid: "lw-res-sae-crumbs", className: "lw-res-crumbs", attrs: { "aria-label": "SAE path" } });
    this.check = el("div", { testid: "lw-res-sae-check", className: "lw-res-check" });
    this.detail = el("div", { testid: "lw-res-feature", className: "lw-res-detail" });
    this.node = el("div", {
      testid: "lw-res-saes",
      className: "lw-res-detail",
      children: [el("div", { className: "lw-res-detail-title", text: "SAE features" }), this.list, this.crumbs, this.check, this.chart.node, this.detail],
    });
    const d = frame.disposer;
    for (const k of ["saes", "sae_path", "sae_bars", "sae_check", "sae_detail"]) d.onModel(model, `change:${k}`, () => this.render());
    d.listen(this.node, "click", (ev) => this.onClick(ev.target));
    d.listen(this.chart.node, "keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") this.onClick(ev.target);
    });
    this.render();
  }

  get path(): string[] {
    return getStrings(this.model, "sae_path");
  }

  private onClick(target: EventTarget | null): void {
    const t = target instanceof Element ? (target.closest("[data-hook],[data-sae-depth],[data-testid='lw-res-sae-bar']") as HTMLElement | null) : null;
    if (!t) return;
    const path = this.path;
    if (t.dataset.hook !== undefined) {
      if (path[0] === t.dataset.hook && path.length === 1) this.send({ type: "sae_back", depth: 0 });
      else this.send({ type: "open_sae", hook: t.dataset.hook });
    } else if (t.dataset.saeDepth !== undefined) {
      const depth = Number(t.dataset.saeDepth);
      if (depth < path.length) this.send({ type: "sae_back", depth });
    } else if (t.dataset.kind === "feature" && path[0]) {
      const f = Number(/^F(\d+)$/.exec(t.dataset.label ?? "")?.[1]);
      if (!Number.isInteger(f)) return;
      if (path[1] === t.dataset.label) this.send({ type: "sae_back", depth: 1 });
      else this.send({ type: "open_feature", hook: path[0], feature: f });
    }
  }

  render(): void {
    const saes = Array.isArray(this.model.get("saes")) ? (this.model.get("saes") as unknown[]).map(obj) : [];
    const path = this.path;
    this.node.hidden = saes.length === 0;
    this.node.dataset.path = path.join("/");
    let bound = 0;
    for (const s of saes) bound = Math.max(bound, Math.abs(num(s.value)) || 0);
    const scale = divergingScale(bound || 1);
    this.list.replaceChildren(
      ...saes.map((s) => {
        const b = el("button", {
          testid: "lw-res-sae",
          className: "lw-button",
          text: `${String(s.label)} · ${formatValue(num(s.value))}`,
          attrs: { type: "button", "data-hook": String(s.hook), "data-value": String(num(s.value)), "aria-pressed": String(path[0] === s.hook), title: `${String(s.hook)} · d_sae ${String(s.d_sae)}` },
        });
        b.style.borderLeft = `6px solid ${scale.color(num(s.value))}`;
        return b;
      }),
    );
    const names = ["SAEs", ...path.map((p, i) => (i === 0 ? String(saes.find((s) => s.hook === p)?.label ?? p) : p))];
    this.crumbs.replaceChildren(
      ...names.map((name, depth) =>
        el("button", { testid: "lw-res-sae-crumb", className: "lw-button lw-res-crumb", text: name, attrs: { type: "button", "data-sae-depth": String(depth), "data-current": String(depth === names.length - 1) } }),
      ),
    );
    this.crumbs.hidden = path.length === 0;
    this.renderBars(path);
    this.renderDetail();
  }

  private renderBars(path: string[]): void {
    const b = obj(this.model.get("sae_bars"));
    const values = vec(b.values);
    const labels = strs(b.labels).slice(0, values.length);
    const kinds = strs(b.kinds);
    let bound = 0;
    for (const v of values) if (Number.isFinite(v)) bound = Math.max(bound, Math.abs(v));
    this.chart.render({ level: "components", layer: null, labels, kinds, values }, labels.map((_, i) => i), path[1] ?? null, divergingScale(bound || 1));
    this.chart.node.dataset.level = "features";
    this.chart.node.hidden = labels.length === 0;
    for (const row of Array.from(this.chart.node.children) as HTMLElement[]) {
      row.dataset.testid = "lw-res-sae-bar";
      if (row.dataset.kind === "feature") {
        row.dataset.openable = "true";
        row.tabIndex = 0;
      }
    }
    const c = obj(this.model.get("sae_check"));
    const ok = Math.abs(num(c.sum) - num(c.target)) <= 1e-3 * Math.max(1, Math.abs(num(c.target)));
    this.check.textContent = labels.length ? `Σ bars = ${formatValue(num(c.sum))} · ${String(c.label ?? "")} = ${formatValue(num(c.target))}` : "";
    this.check.dataset.ok = String(ok);
    this.check.dataset.sum = String(num(c.sum));
    this.check.dataset.target = String(num(c.target));
  }

  private renderDetail(): void {
    const d = obj(this.model.get("sae_detail"));
    const tokens = strs(d.tokens);
    this.detail.hidden = !tokens.length;
    this.detail.dataset.label = String(d.label ?? "");
    if (!tokens.length) return this.detail.replaceChildren();
    const [acts, up, down] = [vec(d.acts), vec(d.promoted_values), vec(d.suppressed_values)];
    const promoted = el("ol", { testid: "lw-res-feature-promoted", className: "lw-act-list" });
    const suppressed = el("ol", { testid: "lw-res-feature-suppressed", className: "lw-act-list" });
    fillTokenList(promoted, strs(d.promoted), up, "lw-res-feature-token");
    fillTokenList(suppressed, strs(d.suppressed), down, "lw-res-feature-token");
    const pos = Number.isInteger(d.pos) ? (d.pos as number) : null;
    this.detail.replaceChildren(
      el("div", {
        testid: "lw-res-feature-title",
        className: "lw-res-detail-title",
        text: `${String(d.label)}: attribution ${formatValue(num(d.value))} · activation ${formatValue(num(d.activation))} at the attributed position`,
      }),
      el("div", { className: "lw-res-caption", text: "Activation on every token of the prompt" }),
      activationStrip(tokens, acts, { highlight: pos, values: true, scale: activationScale(num(d.scale_max)), testid: "lw-res-feature-acts" }),
      el("div", {
        className: "lw-res-effects",
        children: [
          el("div", { children: [el("div", { className: "lw-res-caption", text: "Decoder direction promotes" }), promoted] }),
          el("div", { children: [el("div", { className: "lw-res-caption", text: "Suppresses" }), suppressed] }),
        ],
      }),
    );
  }
}

/** Mount the panel into a residual explorer's frame; returns its disposer. */
export function residual(model: WidgetModel, frame: Frame): () => void {
  const panel = new FeaturePanel(model, frame, (m) => frame.send(m));
  (frame.body.querySelector(".lw-res-main") ?? frame.body).append(panel.node);
  return () => panel.node.remove();
}
