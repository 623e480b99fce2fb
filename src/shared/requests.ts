/**
 * Requests to the kernel and their lifecycle (shared by every widget).
 *
 * Every browser -> kernel message carries a request id: custom messages as `request_id`,
 * state updates as the reserved key `_request` next to the changed traits (one message).
 * The kernel (lenswidget/widgets/base.py) answers each handled message by setting the
 * `reply` trait to `{id, ok}` in the same update as its results, so:
 *
 * - the widget is busy while any request is unanswered, and only the reply that matches
 *   the newest request clears it (two queued edits: the first answer is not final);
 * - ids are `<session>:<seq>`; the kernel handles one comm's messages in order, so a reply
 *   to `seq` also answers every earlier request of this session (ipywidgets merges
 *   queued state updates, so some ids never reach the kernel on their own);
 * - a request that the kernel has not even started on after `timeoutMs` turns the link
 *   "unresponsive" (the view says "kernel not responding — re-run the cell");
 * - without a comm (a saved notebook reopened) or after the kernel restarted, nothing is
 *   sent: the link is "saved" / "disconnected" and the view says how to reconnect.
 */
import type { WidgetModel } from "./types";

/** How the view is connected to its kernel-side widget. */
export type Link = "live" | "saved" | "disconnected" | "unresponsive";

export interface Reply {
  id: string;
  ok: boolean;
}

export const DEFAULT_TIMEOUT_MS = 10_000;

/** Read a `reply` trait value; null unless it is `{id: string, ok: boolean}`. */
export function readReply(value: unknown): Reply | null {
  if (!value || typeof value !== "object") return null;
  const { id, ok } = value as Record<string, unknown>;
  return typeof id === "string" && typeof ok === "boolean" ? { id, ok } : null;
}

function newSession(): string {
  return Math.random().toString(36).slice(2, 8) || "s";
}

interface Pending {
  seq: number;
  sentAt: number;
  acked: boolean;
}

export interface RequestsOptions {
  /** Called whenever `busy` or `link` changes. */
  onChange: () => void;
  /** Milliseconds to wait for the kernel to start on a request. */
  timeoutMs?: () => number;
}

export class Requests {
  readonly session = newSession();
  private seq = 0;
  private replied = 0;
  private pending: Pending[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private holds = 0;
  private state: Link = "live";

  constructor(private readonly model: WidgetModel, private readonly opts: RequestsOptions) {}

  /** Waiting for the kernel (or for a debounced edit to be sent). */
  get busy(): boolean {
    return this.holds > 0 || this.pending.length > 0;
  }

  get link(): Link {
    return this.state;
  }

  /** Whether requests can be sent (the kernel may still be slow: "unresponsive" sends). */
  get connected(): boolean {
    return this.state === "live" || this.state === "unresponsive";
  }

  /** Requests sent so far, and the newest one answered (tests wait on these). */
  get sent(): number {
    return this.seq;
  }

  get answered(): number {
    return this.replied;
  }

  /** Number of unanswered requests. */
  get outstanding(): number {
    return this.pending.length;
  }

  /** Set `traits` and sync them with a request id, in one update message. Null when not connected. */
  update(traits: Record<string, unknown>): string | null {
    if (!this.connected) return null;
    const id = this.open();
    for (const [key, value] of Object.entries(traits)) this.model.set(key, value);
    this.model.set("_request", id);
    this.guard(() => this.model.save_changes(this.callbacks(id)));
    return id;
  }

  /** Send a custom message with a request id. Null when not connected. */
  send(message: Record<string, unknown>): string | null {
    if (!this.connected) return null;
    const id = this.open();
    this.guard(() => this.model.send({ ...message, request_id: id }, this.callbacks(id)));
    return id;
  }

  /** Busy without a request yet (e.g. a debounced edit); `release` undoes one `hold`. */
  hold(): void {
    this.holds += 1;
    this.opts.onChange();
  }

  release(): void {
    if (this.holds === 0) return;
    this.holds -= 1;
    this.opts.onChange();
  }

  /** The kernel's `reply` trait changed. */
  onReply(value: unknown): void {
    const reply = readReply(value);
    if (!reply) return;
    const seq = this.seqOf(reply.id);
    if (seq === null) return; // another view's (or window's) request
    this.replied = Math.max(this.replied, seq);
    const before = this.pending.length;
    this.pending = this.pending.filter((p) => p.seq > seq);
    if (this.state === "unresponsive") this.state = "live";
    if (this.pending.length !== before || this.state === "live") this.rearm();
    this.opts.onChange();
  }

  /** The comm went away (kernel restarting, dead or replaced): nothing will answer. */
  disconnect(): void {
    this.pending = [];
    this.holds = 0;
    this.setTimer(null);
    this.state = "disconnected";
    this.opts.onChange();
  }

  /** The view was restored from saved widget state: there is no comm. */
  markSaved(): void {
    this.pending = [];
    this.holds = 0;
    this.setTimer(null);
    this.state = "saved";
    this.opts.onChange();
  }

  dispose(): void {
    this.setTimer(null);
  }

  // -- internals -------------------------------------------------------------------------
  private open(): string {
    this.seq += 1;
    this.pending.push({ seq: this.seq, sentAt: Date.now(), acked: false });
    this.rearm();
    this.opts.onChange();
    return `${this.session}:${this.seq}`;
  }

  private seqOf(id: string): number | null {
    const [session, n] = id.split(":");
    const seq = Number(n);
    return session === this.session && Number.isInteger(seq) ? seq : null;
  }

  /** ipywidgets calls iopub.status for the message: "busy" means the kernel started on it. */
  private callbacks(id: string): unknown {
    const seq = this.seqOf(id)!;
    return {
      iopub: {
        status: (msg: unknown) => {
          const state = (msg as { content?: { execution_state?: string } } | null)?.content?.execution_state;
          if (state === "busy" || state === "idle") this.ack(seq);
        },
      },
    };
  }

  private ack(seq: number): void {
    let changed = false;
    for (const p of this.pending) {
      if (p.seq <= seq && !p.acked) {
        p.acked = true;
        changed = true;
      }
    }
    if (this.state === "unresponsive") {
      this.state = "live";
      changed = true;
    }
    if (changed) {
      this.rearm();
      this.opts.onChange();
    }
  }

  /** A timer for the oldest request the kernel has not started on. */
  private rearm(): void {
    const waiting = this.pending.find((p) => !p.acked);
    if (!waiting || this.state !== "live") return this.setTimer(null);
    const limit = this.opts.timeoutMs?.() ?? DEFAULT_TIMEOUT_MS;
    const left = Math.max(0, waiting.sentAt + limit - Date.now());
    this.setTimer(() => {
      this.timer = null;
      if (this.state === "live" && this.pending.some((p) => !p.acked)) {
        this.state = "unresponsive";
        this.opts.onChange();
      }
    }, left);
  }

  private setTimer(fn: (() => void) | null, ms = 0): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = fn ? setTimeout(fn, ms) : null;
  }

  /** A model without a comm may throw ("no comm channel"): that means it is a saved view. */
  private guard(fn: () => void): void {
    try {
      fn();
    } catch {
      this.markSaved();
    }
  }
}

/**
 * Whether the model behind an anywidget model proxy has a live comm, via the widget
 * manager's models (matched by the identity of the `reply` object, which is unique per
 * model). Resolves null where that cannot be told (other front ends): assume live then.
 */
export async function commLive(model: WidgetModel): Promise<boolean | null> {
  try {
    const table = (model as { widget_manager?: { _models?: Record<string, unknown> } }).widget_manager?._models;
    if (!table || typeof table !== "object") return null;
    const all = await Promise.all(Object.values(table).map((p) => Promise.resolve(p).catch(() => null)));
    const marker = model.get("reply");
    if (!marker || typeof marker !== "object") return null;
    const real = all.find((m) => {
      const get = (m as { get?: unknown } | null)?.get;
      return typeof get === "function" && (m as { get(k: string): unknown }).get("reply") === marker;
    }) as { comm_live?: unknown; comm?: unknown } | undefined;
    if (!real) return null;
    return real.comm_live === true && real.comm !== undefined;
  } catch {
    return null;
  }
}
