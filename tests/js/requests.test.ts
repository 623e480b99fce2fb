/**
 * Request lifecycle (src/shared/requests.ts + Frame): ids the kernel echoes, busy until the
 * matching reply, "kernel not responding" after a timeout, saved views and kernel restarts.
 */
import { afterEach, describe, expect, test, vi } from "vitest";
import { render as renderAttention } from "../../src/attention/view";
import { render as renderHeatmap } from "../../src/heatmap/view";
import { render as renderResidual } from "../../src/residual/view";
import { commLive, readReply, Requests } from "../../src/shared/requests";
import { byTestId, centre, f32Payload, FakeModel, mouse, u8Payload } from "./fakeModel";

/** A Requests on a fake model; fake timers (vi) drive its timeout. */
function requests(model = new FakeModel({}), timeout = 1000) {
  vi.useFakeTimers();
  let changes = 0;
  const r = new Requests(model, { onChange: () => changes++, timeoutMs: () => timeout });
  return { r, model, clock: { advance: (ms: number) => vi.advanceTimersByTime(ms) }, changes: () => changes };
}

function heatmap(extra: Record<string, unknown> = {}) {
  const model = new FakeModel({ values: f32Payload([0.5, -1, 0.25, 1], [2, 2]), labels: [], row_labels: [], col_labels: [], scale: "diverging", vmin: -1, vmax: 1, selected: null, ...extra });
  const host = document.createElement("div");
  document.body.append(host);
  const cleanup = renderHeatmap({ model, el: host });
  const root = byTestId(host, "lw-root");
  const canvas = byTestId<HTMLCanvasElement>(host, "lw-heatmap-canvas");
  return { model, host, root, canvas, cleanup };
}

afterEach(() => {
  vi.useRealTimers();
  document.body.replaceChildren();
});

describe("Requests", () => {
  test("ids go out with custom messages and state updates; the matching reply clears busy", () => {
    const { r, model } = requests();
    expect(r.busy).toBe(false);
    const a = r.send({ type: "select", component: "x" })!;
    expect(model.sent).toEqual([{ type: "select", component: "x" }]);
    expect(model.requests.map((q) => q.id)).toEqual([a]);
    const b = r.update({ sort: "value" })!;
    expect(model.saves).toEqual([{ sort: "value" }]);
    expect(model.get("sort")).toBe("value");
    expect(a).not.toBe(b);
    expect(r.outstanding).toBe(2);
    r.onReply({ id: a, ok: true });
    expect(r.busy).toBe(true); // the first answer is not the final one
    r.onReply({ id: b, ok: false });
    expect(r.busy).toBe(false);
  });

  test("a reply to a later request answers the earlier ones (merged updates); foreign ids are ignored", () => {
    const { r } = requests();
    r.update({ prompt: "a" });
    r.update({ prompt: "ab" });
    const c = r.update({ prompt: "abc" })!;
    r.onReply({ id: "other:3", ok: true });
    r.onReply({ id: "junk", ok: true });
    r.onReply({ nope: 1 });
    expect(r.outstanding).toBe(3);
    r.onReply({ id: c, ok: true });
    expect(r.outstanding).toBe(0);
    expect(r.busy).toBe(false);
  });

  test("no start within the timeout -> unresponsive; an ack or a late reply recovers", () => {
    const { r, model, clock } = requests(undefined, 1000);
    r.send({ type: "x" });
    clock.advance(999);
    expect(r.link).toBe("live");
    clock.advance(2);
    expect(r.link).toBe("unresponsive");
    expect(r.busy).toBe(true);
    r.onReply({ id: model.lastRequest(), ok: true });
    expect(r.link).toBe("live");
    expect(r.busy).toBe(false);

    // The kernel started on it (iopub "busy"): a long computation is not "not responding".
    r.send({ type: "slow" });
    model.ack();
    clock.advance(60_000);
    expect(r.link).toBe("live");
    expect(r.busy).toBe(true);
  });

  test("holds (debounce) make it busy without a request", () => {
    const { r } = requests();
    r.hold();
    expect(r.busy).toBe(true);
    expect(r.outstanding).toBe(0);
    r.release();
    r.release(); // extra releases are harmless
    expect(r.busy).toBe(false);
  });

  test("disconnected or saved: nothing is sent, busy clears", () => {
    const { r, model } = requests();
    r.send({ type: "x" });
    r.hold();
    r.disconnect();
    expect(r.busy).toBe(false);
    expect(r.link).toBe("disconnected");
    expect(r.send({ type: "y" })).toBeNull();
    expect(r.update({ a: 1 })).toBeNull();
    expect(model.sent).toHaveLength(1);
    expect(model.get("a")).toBeUndefined(); // not even set locally
  });

  test("a model that throws on sync ('no comm channel') is a saved view", () => {
    const model = new FakeModel({});
    model.save_changes = () => {
      throw new Error("Syncing error: no comm channel defined");
    };
    const { r } = requests(model);
    expect(r.update({ a: 1 })).not.toBeNull();
    expect(r.link).toBe("saved");
    expect(r.busy).toBe(false);
  });

  test("readReply accepts only {id: string, ok: boolean}", () => {
    expect(readReply({ id: "a:1", ok: true })).toEqual({ id: "a:1", ok: true });
    for (const bad of [null, {}, { id: 1, ok: true }, { id: "a", ok: 1 }, "a:1"]) expect(readReply(bad)).toBeNull();
  });

  test("commLive finds the backbone model by the identity of its reply object", async () => {
    const model = new FakeModel({ reply: {} });
    const real = { get: (k: string) => model.get(k), comm_live: false, comm: undefined };
    const other = { get: () => ({}), comm_live: true, comm: {} };
    (model as unknown as { widget_manager: unknown }).widget_manager = { _models: { a: Promise.resolve(other), b: Promise.resolve(real) } };
    expect(await commLive(model)).toBe(false);
    real.comm_live = true;
    (real as { comm: unknown }).comm = {};
    expect(await commLive(model)).toBe(true);
    expect(await commLive(new FakeModel({}))).toBeNull(); // no widget manager: unknown
  });
});

describe("Frame lifecycle", () => {
  test("busy until the matching reply; the status line says when the kernel does not answer", () => {
    vi.useFakeTimers();
    const { model, root, canvas } = heatmap({ reply_timeout_ms: 500 });
    const status = byTestId(root, "lw-status");
    expect(root.dataset.link).toBe("live");
    expect(status.hidden).toBe(true);
    mouse("click", canvas, ...centre(canvas, 1, 0));
    mouse("click", canvas, ...centre(canvas, 0, 1));
    expect(model.saves).toEqual([{ selected: { layer: 1, head: 0 } }, { selected: { layer: 0, head: 1 } }]);
    model.answer({}, model.lastRequest(1));
    expect(root.dataset.busy).toBe("true");
    vi.advanceTimersByTime(600);
    expect(root.dataset.link).toBe("unresponsive");
    expect(status.hidden).toBe(false);
    expect(byTestId(root, "lw-status-text").textContent).toBe("kernel not responding — re-run the cell");
    model.answer();
    expect(root.dataset.busy).toBe("false");
    expect(root.dataset.link).toBe("live");
    expect(status.hidden).toBe(true);
  });

  test("a kernel restart (comm_live_update) clears busy and says how to reconnect", async () => {
    const { model, root, canvas } = heatmap();
    mouse("click", canvas, ...centre(canvas, 1, 1));
    expect(root.dataset.busy).toBe("true");
    (model as unknown as { emit(e: string): void }).emit("comm_live_update");
    await Promise.resolve();
    await Promise.resolve();
    expect(root.dataset.busy).toBe("false");
    expect(root.dataset.link).toBe("disconnected");
    expect(byTestId(root, "lw-status-text").textContent).toContain("re-run the cell");
    const before = model.requests.length;
    mouse("click", canvas, ...centre(canvas, 0, 0));
    expect(model.requests.length).toBe(before);
    expect(canvas.dataset.selected).toBe("1,1"); // the local selection was not changed either
    expect(byTestId(root, "lw-status-text").textContent).toBe("Not connected to a kernel: re-run the cell to interact.");
  });

  test("a saved view (no comm) renders read-only, labelled, and interactions say how to reconnect", async () => {
    const model = new FakeModel({ reply: {} });
    const real = { get: (k: string) => model.get(k), comm_live: false, comm: undefined };
    (model as unknown as { widget_manager: unknown }).widget_manager = { _models: { m: Promise.resolve(real) } };
    model.state = { ...model.state, bars: {}, path: [], prompts: ["The cat"], editable: true, n_prompts: 1, answer: [" the"], incorrect: [] };
    const host = document.createElement("div");
    document.body.append(host);
    renderResidual({ model, el: host });
    const root = byTestId(host, "lw-root");
    await new Promise((r) => setTimeout(r, 0));
    expect(root.dataset.link).toBe("saved");
    expect(byTestId(root, "lw-status").hidden).toBe(false);
    expect(byTestId(root, "lw-status-text").textContent).toBe("Saved view (read-only): re-run the cell to reconnect.");
    expect(byTestId<HTMLTextAreaElement>(root, "lw-res-prompts").readOnly).toBe(true);
    byTestId(root, "lw-res-run").click();
    expect(model.sent).toEqual([]);
    expect(root.dataset.busy).toBe("false");
    expect(byTestId(root, "lw-status-text").textContent).toBe("Not connected to a kernel: re-run the cell to interact.");
  });

  test("two views of one model: each clears on its own reply, neither is stuck", () => {
    const model = new FakeModel({ values: f32Payload([0.5, -1, 0.25, 1], [2, 2]), selected: null, scale: "diverging", vmin: -1, vmax: 1 });
    const hosts = [document.createElement("div"), document.createElement("div")];
    hosts.forEach((h) => document.body.append(h));
    const cleanups = hosts.map((h) => renderHeatmap({ model, el: h }));
    const [a, b] = hosts.map((h) => byTestId<HTMLCanvasElement>(h, "lw-heatmap-canvas"));
    mouse("click", a!, ...centre(a!, 1, 0));
    expect(byTestId(hosts[0]!, "lw-root").dataset.busy).toBe("true");
    expect(b!.dataset.selected).toBe("1,0"); // the other view follows the model
    mouse("click", b!, ...centre(b!, 0, 0));
    model.answer({}, model.lastRequest(1));
    model.answer({}, model.lastRequest(0));
    expect(hosts.map((h) => byTestId(h, "lw-root").dataset.busy)).toEqual(["false", "false"]);
    cleanups[0]!();
    expect(hosts[0]!.children).toHaveLength(0);
    mouse("click", b!, ...centre(b!, 1, 1));
    expect(b!.dataset.selected).toBe("1,1"); // the remaining view still works
    cleanups[1]!();
    expect(model.listenerCount()).toBe(0);
  });

  test("two queued prompt edits: the first answer is not shown as final", () => {
    vi.useFakeTimers();
    const one = (n: number) => u8Payload(Array.from({ length: n * n }, (_, i) => (i % (n + 1) === 0 ? 1 : 0)), [1, 1, n, n]);
    const model = new FakeModel({ layers: [0], heads: [0], head_names: [], layer: 0, head: null, prompt: "a", tokens: ["a"], editable: true, debounce_ms: 100, thumbs: one(1), pattern: { ...one(1), shape: [1, 1, 1] } });
    const host = document.createElement("div");
    document.body.append(host);
    renderAttention({ model, el: host });
    const root = byTestId(host, "lw-root");
    const box = byTestId<HTMLTextAreaElement>(host, "lw-prompt");
    box.value = "a b";
    box.dispatchEvent(new Event("input", { bubbles: true }));
    expect(root.dataset.busy).toBe("true"); // a debounced edit is pending
    vi.advanceTimersByTime(100);
    box.value = "a b c";
    box.dispatchEvent(new Event("input", { bubbles: true }));
    vi.advanceTimersByTime(100);
    expect(model.saves).toEqual([{ prompt: "a b" }, { prompt: "a b c" }]);
    model.answer({ prompt: "a b", tokens: ["a", " b"] }, model.lastRequest(1));
    expect(root.dataset.busy).toBe("true");
    model.answer({ prompt: "a b c", tokens: ["a", " b", " c"] }, model.lastRequest(0));
    expect(root.dataset.busy).toBe("false");
  });
});
