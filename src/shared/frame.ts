/**
 * The chrome every widget shares: root (`lw-root`, theme and busy flags), title, error
 * banner bound to the `error` trait, export buttons and the tooltip. Views put their
 * content in `frame.body`.
 */
import { el } from "./dom";
import { Disposer } from "./events";
import { injectStyles } from "./styles";
import { onThemeChange, readTheme, type Theme } from "./theme";
import { Tooltip } from "./tooltip";
import type { WidgetModel } from "./types";

export class Frame {
  readonly root: HTMLDivElement;
  readonly body: HTMLDivElement;
  readonly toolbar: HTMLDivElement;
  readonly tooltip: Tooltip;
  readonly disposer = new Disposer();
  theme: Theme;
  private readonly title: HTMLDivElement;
  private readonly banner: HTMLDivElement;
  private readonly bannerText: HTMLSpanElement;
  private busyAt: number | null = null;

  constructor(private readonly model: WidgetModel, host: HTMLElement, widget: string) {
    injectStyles();
    this.title = el("div", { testid: "lw-title", className: "lw-title" });
    this.bannerText = el("span", { testid: "lw-error-text" });
    const dismiss = el("button", { testid: "lw-error-dismiss", className: "lw-button", text: "×", attrs: { type: "button", "aria-label": "Dismiss error" } });
    this.banner = el("div", { testid: "lw-error", className: "lw-error", attrs: { role: "alert" }, children: [this.bannerText, dismiss] });
    this.toolbar = el("div", { className: "lw-toolbar" });
    this.body = el("div", { className: "lw-body" });
    this.root = el("div", {
      testid: "lw-root",
      className: "lw-root",
      attrs: { "data-widget": widget, "data-busy": "false" },
      children: [el("div", { className: "lw-header", children: [this.title, this.toolbar] }), this.banner, this.body],
    });
    host.append(this.root);
    this.tooltip = new Tooltip(this.root);
    this.theme = readTheme(this.root);
    this.root.dataset.theme = this.theme.dark ? "dark" : "light";

    this.disposer.listen(dismiss, "click", () => {
      this.showError("");
      model.send({ type: "clear_error" });
    });
    this.disposer.onModel(model, "change:error", () => this.showError(this.str("error")));
    this.disposer.onModel(model, "change:title", () => (this.title.textContent = this.str("title")));
    this.disposer.onModel(model, "change:revision", () => this.setBusy(false));
    this.showError(this.str("error"));
    this.title.textContent = this.str("title");
    this.disposer.listen(this.root, "mouseleave", () => this.tooltip.hide());
    this.disposer.add(() => this.root.remove());
  }

  /** A string trait ('' when missing or not a string). */
  str(key: string): string {
    const v = this.model.get(key);
    return typeof v === "string" ? v : "";
  }

  showError(message: string): void {
    this.bannerText.textContent = message;
    this.banner.hidden = !message;
  }

  /** Mark the widget busy until the kernel's next `revision` (or `false`). */
  setBusy(busy: boolean): void {
    this.busyAt = busy ? Date.now() : null;
    this.root.dataset.busy = busy ? "true" : "false";
  }

  get busy(): boolean {
    return this.busyAt !== null;
  }

  /** Add a toolbar button. */
  button(testid: string, text: string, onClick: () => void): HTMLButtonElement {
    const b = el("button", { testid, className: "lw-button", text, attrs: { type: "button" } });
    this.disposer.listen(b, "click", onClick);
    this.toolbar.append(b);
    return b;
  }

  /** Re-read the theme when JupyterLab switches it, then call `cb`. */
  watchTheme(cb: () => void): void {
    this.disposer.add(
      onThemeChange(() => {
        this.theme = readTheme(this.root);
        this.root.dataset.theme = this.theme.dark ? "dark" : "light";
        cb();
      }),
    );
  }
}
