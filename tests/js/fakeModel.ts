/** A fake anywidget model: get/set/on/off/send/save_changes, recording what the view does. */
import type { Callback, WidgetModel } from "../../src/shared/types";

export class FakeModel implements WidgetModel {
  state: Record<string, unknown>;
  sent: unknown[] = [];
  saves: Array<Record<string, unknown>> = [];
  sets: Array<[string, unknown]> = [];
  private listeners = new Map<string, Set<Callback>>();
  private dirty: Record<string, unknown> = {};

  constructor(state: Record<string, unknown>) {
    this.state = { error: "", title: "", revision: 0, ...state };
  }

  get(key: string): unknown {
    return this.state[key];
  }

  /** Browser-side set: fires change events like Backbone (only when the value changed). */
  set(key: string, value: unknown): void {
    this.sets.push([key, value]);
    this.dirty[key] = value;
    const changed = JSON.stringify(this.state[key]) !== JSON.stringify(value);
    this.state[key] = value;
    if (changed) this.emit(`change:${key}`);
  }

  on(event: string, cb: Callback): void {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event)!.add(cb);
  }

  off(event?: string | null, cb?: Callback | null): void {
    if (!event) return this.listeners.clear();
    if (!cb) this.listeners.delete(event);
    else this.listeners.get(event)?.delete(cb);
  }

  send(content: unknown): void {
    this.sent.push(content);
  }

  save_changes(): void {
    this.saves.push({ ...this.dirty });
    this.dirty = {};
  }

  /** Kernel-side update: set every key, then fire their change events (as Backbone does). */
  kernelUpdate(update: Record<string, unknown>): void {
    Object.assign(this.state, update);
    for (const key of Object.keys(update)) this.emit(`change:${key}`);
  }

  listenerCount(): number {
    let n = 0;
    for (const set of this.listeners.values()) n += set.size;
    return n;
  }

  private emit(event: string): void {
    for (const cb of [...(this.listeners.get(event) ?? [])]) cb(this);
  }
}

/** A float32 tensor payload as codec.py would send it (buffer as a DataView). */
export function f32Payload(values: number[], shape: number[]): Record<string, unknown> {
  const buf = new ArrayBuffer(values.length * 4);
  const dv = new DataView(buf);
  values.forEach((v, i) => dv.setFloat32(i * 4, v, true));
  return { buffer: dv, shape, dtype: "float32", scale: 1, offset: 0 };
}

/** A uint8-quantised payload of values in [0, 1]. */
export function u8Payload(values: number[], shape: number[]): Record<string, unknown> {
  const bytes = new Uint8Array(values.map((v) => Math.round(v * 255)));
  return { buffer: new DataView(bytes.buffer), shape, dtype: "uint8", scale: 1 / 255, offset: 0 };
}

export function mouse(type: string, target: Element, x = 0, y = 0): void {
  target.dispatchEvent(new MouseEvent(type, { clientX: x, clientY: y, bubbles: true }));
}

/** Client coordinates of the centre of cell (r, c) of a grid canvas: the canvas sits at (0, 0) in happy-dom. */
export function centre(canvas: HTMLCanvasElement, r: number, c: number): [number, number] {
  return [(c + 0.5) * Number(canvas.dataset.cellWidth), (r + 0.5) * Number(canvas.dataset.cellHeight)];
}

export function byTestId<T extends Element = HTMLElement>(root: ParentNode, id: string): T {
  const node = root.querySelector(`[data-testid="${id}"]`);
  if (!node) throw new Error(`no element with data-testid=${id}`);
  return node as T;
}

export function allByTestId<T extends Element = HTMLElement>(root: ParentNode, id: string): T[] {
  return [...root.querySelectorAll(`[data-testid="${id}"]`)] as T[];
}
