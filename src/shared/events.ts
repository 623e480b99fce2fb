import type { Callback, WidgetModel } from "./types";

/** Collects model listeners, DOM listeners and timers so a view can dispose all at once. */
export class Disposer {
  private readonly undo: Array<() => void> = [];

  /** `model.on(event, cb)`, undone by {@link dispose}. */
  onModel(model: WidgetModel, event: string, cb: Callback): void {
    model.on(event, cb);
    this.undo.push(() => model.off(event, cb));
  }

  /** `target.addEventListener`, undone by {@link dispose}. */
  listen<K extends keyof HTMLElementEventMap>(
    target: HTMLElement,
    type: K,
    cb: (ev: HTMLElementEventMap[K]) => void,
  ): void {
    target.addEventListener(type, cb);
    this.undo.push(() => target.removeEventListener(type, cb));
  }

  add(fn: () => void): void {
    this.undo.push(fn);
  }

  dispose(): void {
    while (this.undo.length) this.undo.pop()?.();
  }
}
