/** The subset of the anywidget model API the views use (easy to fake in tests). */
export type Callback = (...args: unknown[]) => void;

export interface WidgetModel {
  get(key: string): unknown;
  set(key: string, value: unknown): void;
  on(event: string, callback: Callback): void;
  off(event?: string | null, callback?: Callback | null): void;
  send(content: unknown, callbacks?: unknown, buffers?: ArrayBuffer[] | ArrayBufferView[]): void;
  save_changes(callbacks?: unknown): void;
}

export interface RenderProps {
  model: WidgetModel;
  el: HTMLElement;
}

export type Cleanup = () => void;
