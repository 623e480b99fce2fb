/** A fake anywidget model: get/set/on/off/send/save_changes, recording what the view does. */
import type { Callback, WidgetModel } from "../../src/shared/types";

export class FakeModel implements WidgetModel {
  state: Record<string, unknown>;
  /** Custom messages, without their `request_id`. */
  sent: unknown[] = [];
  /** State updates, without their `_request`. */
  saves: Array<Record<string, unknown>> = [];
  sets: Array<[string, unknown]> = [];
  /** Request ids in the order sent, with the ipywidgets callbacks passed along. */
  requests: Array<{ id: string; callbacks: unknown }> = [];
  private listeners = new Map<string, Set<Callback>>();
  private dirty: Record<string, unknown> = {};

  constructor(state: Record<string, unknown>) {
    this.state = { error: "", title: "", revision: 0, reply: {}, ...state };
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
    if (changed) {
      this.emit(`change:${key}`);
      this.emit("change");
    }
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

  send(content: unknown, callbacks?: unknown): void {
    const { request_id, ...rest } = content as Record<string, unknown>;
    if (typeof request_id === "string") this.requests.push({ id: request_id, callbacks });
    this.sent.push(rest);
  }

  save_changes(callbacks?: unknown): void {
    const { _request, ...rest } = this.dirty;
    if (typeof _request === "string") this.requests.push({ id: _request, callbacks });
    this.saves.push(rest);
    this.dirty = {};
  }

  /** The id of the latest request (or the `back`-th before it). */
  lastRequest(back = 0): string {
    const r = this.requests[this.requests.length - 1 - back];
    if (!r) throw new Error("no request was sent");
    return r.id;
  }

  /** The kernel answers request `id` (default: the latest) with `update`. */
  answer(update: Record<string, unknown> = {}, id = this.lastRequest(), ok = true): void {
    const revision = ((this.state.revision as number) ?? 0) + 1;
    this.kernelUpdate({ ...update, revision, reply: { id, ok } });
  }

  /** The kernel starts on request `id` (ipywidgets' iopub status "busy" callback). */
  ack(id = this.lastRequest()): void {
    const r = this.requests.find((x) => x.id === id);
    const status = (r?.callbacks as { iopub?: { status?: (m: unknown) => void } } | undefined)?.iopub?.status;
    status?.({ content: { execution_state: "busy" } });
  }

  /** Kernel-side update: set every key, then fire their change events and one `change` (as Backbone does). */
  kernelUpdate(update: Record<string, unknown>): void {
    Object.assign(this.state, update);
    for (const key of Object.keys(update)) this.emit(`change:${key}`);
    this.emit("change");
  }

  listenerCount(): number {
    let n = 0;
    for (const set of this.listeners.values()) n += set.size;
    return n;
  }

  emit(event: string): void {
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
