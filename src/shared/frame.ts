/**
 * The chrome every widget shares: root (`lw-root`, theme, busy and link flags), title,
 * error banner bound to the `error` trait, the kernel-link status line, export buttons and
 * the tooltip. Views put their content in `frame.body` and talk to the kernel through
 * `frame.update(...)` / `frame.send(...)` (request ids, busy state, timeouts: requests.ts).
 */
import { button, el } from "./dom";
import { Disposer } from "./events";
import { commLive, DEFAULT_TIMEOUT_MS, Requests, type Link } from "./requests";
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
  private readonly status: HTMLDivElement;
  private readonly statusText: HTMLSpanElement;
  readonly requests: Requests;
  private readonly panels: Array<{ fn: () => void; dirty: boolean }> = [];
  private flushQueued = false;
  private disposed = false;

  constructor(private readonly model: WidgetModel, host: HTMLElement, widget: string) {
    injectStyles();
    this.title = el("div", { testid: "lw-title", className: "lw-title" });
    this.bannerText = el("span", { testid: "lw-error-text" });
    const dismiss = button("lw-error-dismiss", "×", { "aria-label": "Dismiss error" });
    this.banner = el("div", { testid: "lw-error", className: "lw-error", attrs: { role: "alert" }, children: [this.bannerText, dismiss] });
    this.toolbar = el("div", { className: "lw-toolbar" });
    this.body = el("div", { className: "lw-body" });
    this.statusText = el("span", { testid: "lw-status-text" });
    this.status = el("div", { testid: "lw-status", className: "lw-status", attrs: { role: "status" }, children: [this.statusText] });
    this.status.hidden = true;
    this.root = el("div", {
      testid: "lw-root",
      className: "lw-root",
      attrs: { "data-widget": widget, "data-busy": "false", "data-link": "live" },
      children: [el("div", { className: "lw-header", children: [this.title, this.toolbar] }), this.status, this.banner, this.body],
    });
    host.append(this.root);
    this.tooltip = new Tooltip(this.root);
    this.theme = readTheme(this.root);
    this.root.dataset.theme = this.theme.dark ? "dark" : "light";

    this.requests = new Requests(model, {
      onChange: () => this.renderLink(),
      timeoutMs: () => {
        const ms = model.get("reply_timeout_ms");
        return typeof ms === "number" && ms > 0 ? ms : DEFAULT_TIMEOUT_MS;
      },
    });
    this.disposer.add(() => {
      this.disposed = true;
      this.requests.dispose();
    });
    this.disposer.listen(dismiss, "click", () => {
      this.showError("");
      this.send({ type: "clear_error" });
    });
    this.disposer.onModel(model, "change:error", () => this.showError(this.str("error")));
    this.disposer.onModel(model, "change:title", () => (this.title.textContent = this.str("title")));
    this.disposer.onModel(model, "change:reply", () => this.requests.onReply(model.get("reply")));
    // ipywidgets fires this when the kernel restarts (the comm is gone for good).
    this.disposer.onModel(model, "comm_live_update", () => {
      void commLive(model).then((live) => {
        if (live !== true) this.requests.disconnect();
      });
    });
    void commLive(model).then((live) => {
      if (live === false && this.requests.link === "live") this.requests.markSaved();
    });
    this.showError(this.str("error"));
    this.title.textContent = this.str("title");
    this.disposer.listen(this.root, "mouseleave", () => this.tooltip.hide());
    this.disposer.add(() => this.root.remove());
    // Optional panels the kernel sends as a module URL (SAE features: src/saes/index.ts)
    const extra = model.get("sae_esm");
    if (extra) import(extra as string).then((m) => m.mount(model, this), (e) => this.showError("" + e));
  }

  /**
   * Re-render a panel when any of `keys` changes, once per kernel update: Backbone fires
   * `change:<key>` for every trait of an update and then one `change`, where dirty panels
   * repaint (in the order they were watched). Panels whose traits did not change are not
   * touched.
   */
  watch(keys: string[], fn: () => void): void {
    const panel = { fn, dirty: false };
    this.panels.push(panel);
    for (const key of keys) {
      this.disposer.onModel(this.model, `change:${key}`, () => {
        panel.dirty = true;
        this.queueFlush();
      });
    }
    if (this.panels.length === 1) this.disposer.onModel(this.model, "change", () => this.flush());
  }

  /** Run the dirty panels now. */
  flush(): void {
    this.flushQueued = false;
    for (const panel of this.panels) {
      if (!panel.dirty) continue;
      panel.dirty = false;
      panel.fn();
    }
  }

  private queueFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => {
      if (this.flushQueued && !this.disposed) this.flush();
    });
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

  // -- talking to the kernel -------------------------------------------------------------
  /** Set browser-writable traits and sync them (one message, with a request id). False when not connected. */
  update(traits: Record<string, unknown>): boolean {
    if (this.requests.update(traits) !== null) return true;
    this.refuse();
    return false;
  }

  /** Send a custom message (with a request id). False when not connected. */
  send(message: Record<string, unknown>): boolean {
    if (this.requests.send(message) !== null) return true;
    this.refuse();
    return false;
  }

  /** Busy before anything is sent (a pending debounced edit); `release()` undoes it. */
  hold(): void {
    this.requests.hold();
  }

  release(): void {
    this.requests.release();
  }

  get busy(): boolean {
    return this.requests.busy;
  }

  /** Whether the kernel side can be reached (false for a saved view or after a restart). */
  get connected(): boolean {
    return this.requests.connected;
  }

  get link(): Link {
    return this.requests.link;
  }

  /** An interaction that needs the kernel happened without one: say how to reconnect. */
  private refuse(): void {
    this.root.dataset.refused = "true";
    this.renderLink();
  }

  private renderLink(): void {
    const link = this.requests.link;
    const d = this.root.dataset;
    d.busy = String(this.requests.busy);
    d.link = link;
    d.requests = String(this.requests.sent);
    d.answered = String(this.requests.answered);
    const refused = this.root.dataset.refused === "true";
    const interact = "Not connected to a kernel: re-run the cell to interact.";
    const text: Record<Link, string> = {
      live: "",
      saved: refused ? interact : "Saved view (read-only): re-run the cell to reconnect.",
      disconnected: refused ? interact : "Kernel restarted (read-only): re-run the cell to reconnect.",
      unresponsive: "kernel not responding — re-run the cell",
    };
    this.statusText.textContent = text[link];
    this.status.hidden = link === "live";
    this.status.dataset.link = link;
    if (link === "saved" || link === "disconnected") {
      for (const input of this.body.querySelectorAll("textarea, input[type=text]")) (input as HTMLInputElement).readOnly = true;
    }
  }

  /** Add a toolbar button. */
  button(testid: string, text: string, onClick: () => void): HTMLButtonElement {
    const b = button(testid, text);
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
