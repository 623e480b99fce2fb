/**
 * The patcher view against a fake model: pointer drags (hit-tested against stubbed
 * bounding boxes), the keyboard alternative, chips, metric, sweep and copy-as-code.
 */
import { afterEach, describe, expect, test, vi } from "vitest";
import { render } from "../../src/patcher/view";
import { installCanvasStub } from "./canvasStub";
import { allByTestId, byTestId, f32Payload, FakeModel } from "./fakeModel";

const CELL = 10;
const LAYERS = 3;
const POS = 5;
const XSS = "<img src=x onerror=window.__xss=1>";
// Layout (client px): clean grid at x 0.., corrupted grid at x 500.., ablate target at x 1000..
const CLEAN_X = 0;
const CORRUPTED_X = 500;
const ABLATE_X = 1000;

function state(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    acts: ["resid_pre", "resid_mid", "attn_out", "mlp_out", "z", "q", "k", "v", "pattern"],
    act_labels: { resid_pre: "residual stream" },
    act: "resid_pre",
    head_position: null,
    prompt_index: 0,
    ablation: "zero",
    dims: { n_layers: LAYERS, n_pos: POS, n_heads: 4, n_kv_heads: 2, batch: 1 },
    clean_str_tokens: ["<bos>", "The", " cat", " sat", XSS],
    corrupted_str_tokens: ["<bos>", "The", " dog", " sat", " on"],
    token_differs: [false, false, true, false, true],
    clean_prompt: "The cat sat",
    corrupted_prompt: "The dog sat",
    editable: true,
    cell_diff: f32Payload(Array.from({ length: LAYERS * POS }, (_, i) => i / 10), [LAYERS, POS]),
    patches: [],
    metric_name: "normalised logit difference",
    metric_value: 0,
    metric_before: null,
    metric_clean: 1,
    metric_corrupted: 0,
    metric_pending: false,
    top_clean: [{ token: " Paris", id: 7, prob: 0.5, logit: 3 }],
    top_corrupted: [{ token: XSS, id: 8, prob: 0.25, logit: 2 }],
    top_patched: [{ token: " Rome", id: 9, prob: 0.125, logit: 1 }],
    sweep: { buffer: new DataView(new ArrayBuffer(0)), shape: [0], dtype: "float32", scale: 1, offset: 0, act: "", position: null, kind: "", complete: false },
    sweep_state: "idle",
    sweep_progress: [0, 0],
    code: "print('hi')",
    notice: "",
    cell_size: CELL,
    ...extra,
  };
}

function box(node: Element, left: number, top: number, width: number, height: number): void {
  Object.defineProperty(node, "getBoundingClientRect", {
    configurable: true,
    value: () => ({ left, top, right: left + width, bottom: top + height, width, height, x: left, y: top, toJSON() {} }),
  });
}

function setup(extra: Record<string, unknown> = {}) {
  const model = new FakeModel(state(extra));
  const host = document.createElement("div");
  document.body.append(host);
  const cleanup = render({ model, el: host });
  const clean = byTestId<HTMLCanvasElement>(host, "lw-clean-grid");
  const corrupted = byTestId<HTMLCanvasElement>(host, "lw-corrupted-grid");
  const ablate = byTestId(host, "lw-ablate-target");
  const layout = () => {
    const rows = Number(clean.dataset.rows);
    const cols = Number(clean.dataset.cols);
    box(clean, CLEAN_X, 0, cols * CELL, rows * CELL);
    box(corrupted, CORRUPTED_X, 0, cols * CELL, rows * CELL);
    box(ablate, ABLATE_X, 0, 120, 60);
  };
  layout();
  return { model, host, cleanup, clean, corrupted, ablate, root: byTestId(host, "lw-root"), layout };
}

/** Client point of the centre of cell (r, c) of a grid at x offset `x0`. */
const at = (x0: number, r: number, c: number): [number, number] => [x0 + (c + 0.5) * CELL, (r + 0.5) * CELL];

function pointer(type: string, target: EventTarget, [x, y]: [number, number], shift = false): void {
  target.dispatchEvent(new PointerEvent(type, { clientX: x, clientY: y, bubbles: true, button: 0, shiftKey: shift }));
}

/** Press on `from` (on the clean canvas), move in steps to `to`, release there. */
function drag(clean: HTMLCanvasElement, from: [number, number], to: [number, number], opts: { shift?: boolean; release?: boolean } = {}): void {
  pointer("pointerdown", clean, from, opts.shift);
  for (let i = 1; i <= 4; i++) {
    pointer("pointermove", window, [from[0] + ((to[0] - from[0]) * i) / 4, from[1] + ((to[1] - from[1]) * i) / 4]);
  }
  if (opts.release !== false) pointer("pointerup", window, to);
}

const key = (target: Element, k: string, shift = false) =>
  target.dispatchEvent(new KeyboardEvent("keydown", { key: k, shiftKey: shift, bubbles: true }));

afterEach(() => {
  document.body.replaceChildren();
});

describe("patcher view", () => {
  test("renders both runs as aligned layer x position grids", () => {
    const { host, clean, corrupted, root } = setup();
    expect(root.dataset.widget).toBe("patcher");
    for (const c of [clean, corrupted]) {
      expect([c.dataset.rows, c.dataset.cols, c.dataset.cellWidth]).toEqual(["3", "5", String(CELL)]);
    }
    expect(allByTestId(host, "lw-clean-col-label").map((e) => e.textContent)).toEqual(["<bos>", "The", "·cat", "·sat", XSS.replace(/ /g, "·")]);
    expect(allByTestId(host, "lw-corrupted-col-label").map((e) => e.textContent)).toEqual(["<bos>", "The", "·dog", "·sat", "·on"]);
    expect(host.querySelector("img")).toBeNull();
    expect(allByTestId(host, "lw-clean-token").map((e) => e.dataset.differs)).toEqual(["false", "false", "true", "false", "true"]);
    expect(clean.dataset.overlay).toBe("diff");
    expect(byTestId(host, "lw-head-position").closest("label")!.hidden).toBe(true);
    expect(byTestId(host, "lw-prompt-select").closest("label")!.hidden).toBe(true);
  });

  test("dragging a clean cell onto the corrupted grid patches it", () => {
    const { model, clean, corrupted, root } = setup();
    pointer("pointerdown", clean, at(CLEAN_X, 2, 4));
    expect(root.dataset.drag).toBe("pressed");
    pointer("pointermove", window, at(CORRUPTED_X, 0, 0));
    expect(root.dataset.drag).toBe("dragging");
    expect(corrupted.dataset.dropPreview).toBe("2,4,2,4"); // aligned with the source cell
    expect(byTestId(root, "lw-drag-ghost").hidden).toBe(false);
    pointer("pointerup", window, at(CORRUPTED_X, 1, 1));
    expect(root.dataset.drag).toBe("idle");
    expect(model.sent).toEqual([{ type: "add_patch", act: "resid_pre", layers: [2, 2], positions: [4, 4], heads: null, mode: "clean" }]);
    expect(root.dataset.busy).toBe("true");
    expect(corrupted.dataset.dropPreview).toBe("");
    expect(clean.dataset.selection).toBe("2,4,2,4");
    model.answer();
    expect(root.dataset.busy).toBe("false");
  });

  test("shift-drag selects a rectangle, then dragging it patches the whole rectangle", () => {
    const { model, clean } = setup();
    drag(clean, at(CLEAN_X, 0, 1), at(CLEAN_X, 2, 3), { shift: true });
    expect(clean.dataset.selection).toBe("0,1,2,3");
    expect(model.sent).toEqual([]);
    drag(clean, at(CLEAN_X, 1, 2), at(CORRUPTED_X, 1, 2));
    expect(model.sent).toEqual([{ type: "add_patch", act: "resid_pre", layers: [0, 2], positions: [1, 3], heads: null, mode: "clean" }]);
  });

  test("dropping on the ablate target ablates with the chosen mode", () => {
    const { model, clean, host } = setup();
    drag(clean, at(CLEAN_X, 1, 0), [ABLATE_X + 10, 10]);
    expect(model.sent.at(-1)).toEqual({ type: "add_patch", act: "resid_pre", layers: [1, 1], positions: [0, 0], heads: null, mode: "zero" });
    const select = byTestId<HTMLSelectElement>(host, "lw-ablation-mode");
    select.value = "mean";
    select.dispatchEvent(new Event("change"));
    expect(model.saves.at(-1)).toEqual({ ablation: "mean" });
    drag(clean, at(CLEAN_X, 0, 2), [ABLATE_X + 10, 10], { release: false });
    expect(byTestId(host, "lw-ablate-target").dataset.over).toBe("true");
    pointer("pointerup", window, [ABLATE_X + 10, 10]);
    expect(model.sent.at(-1)).toMatchObject({ layers: [0, 0], positions: [2, 2], mode: "mean" });
    expect(byTestId(host, "lw-ablate-target").dataset.over).toBe("false");
  });

  test("releasing elsewhere, Escape, or a click sends nothing", () => {
    const { model, clean, root } = setup();
    drag(clean, at(CLEAN_X, 1, 1), [800, 300]); // empty space
    drag(clean, at(CLEAN_X, 1, 1), at(CLEAN_X, 0, 0)); // back onto the clean grid
    drag(clean, at(CLEAN_X, 0, 0), at(CORRUPTED_X, 0, 0), { release: false });
    window.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape" }));
    expect(root.dataset.drag).toBe("idle");
    pointer("pointerup", window, at(CORRUPTED_X, 0, 0)); // listeners are gone: nothing happens
    pointer("pointerdown", clean, at(CLEAN_X, 2, 2));
    pointer("pointerup", window, at(CLEAN_X, 2, 2));
    expect(model.sent).toEqual([]);
    expect(clean.dataset.selection).toBe("2,2,2,2");
  });

  test("per-head grids: layer x head chips at the chosen position (or every position)", () => {
    const { model, clean, host, layout } = setup({ act: "z" });
    layout();
    expect(clean.dataset.cols).toBe("4");
    expect(allByTestId(host, "lw-clean-col-label").map((e) => e.textContent)).toEqual(["H0", "H1", "H2", "H3"]);
    drag(clean, at(CLEAN_X, 1, 2), at(CORRUPTED_X, 1, 2));
    expect(model.sent.at(-1)).toEqual({ type: "add_patch", act: "z", layers: [1, 1], positions: null, heads: [2, 2], mode: "clean" });

    byTestId(host, "lw-clean-token").parentElement!.children[3]!.dispatchEvent(new MouseEvent("click", { bubbles: true }));
    expect(model.saves.at(-1)).toEqual({ head_position: 3 });
    drag(clean, at(CLEAN_X, 0, 0), at(CORRUPTED_X, 0, 0));
    expect(model.sent.at(-1)).toMatchObject({ act: "z", positions: [3, 3], heads: [0, 0] });

    model.kernelUpdate({ act: "k" });
    layout();
    expect(clean.dataset.cols).toBe("2"); // key/value heads
    expect(allByTestId(host, "lw-clean-col-label").map((e) => e.textContent)).toEqual(["KV0", "KV1"]);
  });

  test("choosing an activation sets the trait", () => {
    const { model, host } = setup();
    const select = byTestId<HTMLSelectElement>(host, "lw-act-select");
    expect([...select.options].map((o) => o.value)).toContain("pattern");
    select.value = "mlp_out";
    select.dispatchEvent(new Event("change"));
    expect(model.saves.at(-1)).toEqual({ act: "mlp_out" });
  });

  test("keyboard: arrows select, Shift extends, Enter patches, a ablates, Escape clears", () => {
    const { model, clean, host } = setup();
    clean.focus();
    expect(clean.getAttribute("data-lm-suppress-shortcuts")).toBe("true");
    key(clean, "Enter");
    expect(model.sent).toEqual([]); // nothing selected yet
    key(clean, "ArrowDown"); // first press puts the cursor at (0, 0)
    key(clean, "ArrowDown");
    key(clean, "ArrowRight");
    expect(clean.dataset.selection).toBe("1,1,1,1");
    key(clean, "ArrowRight", true);
    key(clean, "ArrowDown", true);
    expect(clean.dataset.selection).toBe("1,1,2,2");
    expect(byTestId(host, "lw-selection").textContent).toContain("L1–2");
    key(clean, "Enter");
    expect(model.sent.at(-1)).toEqual({ type: "add_patch", act: "resid_pre", layers: [1, 2], positions: [1, 2], heads: null, mode: "clean" });
    key(clean, "a");
    expect(model.sent.at(-1)).toMatchObject({ layers: [1, 2], positions: [1, 2], mode: "zero" });
    byTestId(host, "lw-patch-button").click();
    expect(model.sent).toHaveLength(3);
    key(clean, "Escape");
    expect(clean.dataset.selection).toBe("");
    byTestId(host, "lw-ablate-button").click();
    expect(model.sent).toHaveLength(3);
  });

  test("chips: render as text, remove/toggle by click and by keyboard", () => {
    const { model, host, corrupted } = setup();
    model.kernelUpdate({
      patches: [
        { id: 3, act: "resid_pre", layers: [2], positions: [4], heads: null, mode: "clean", enabled: true, label: `resid_pre · L2 · pos 4 ${XSS}` },
        { id: 5, act: "resid_pre", layers: [0, 1], positions: [1], heads: null, mode: "zero", enabled: false, label: "zero resid_pre · L0–1 · pos 1" },
        { id: 6, act: "z", layers: [0], positions: null, heads: [1], mode: "clean", enabled: true, label: "z · L0 · H1 · all pos" },
      ],
    });
    const chips = allByTestId(host, "lw-chip");
    expect(chips.map((c) => c.dataset.id)).toEqual(["3", "5", "6"]);
    expect(chips.map((c) => c.dataset.enabled)).toEqual(["true", "false", "true"]);
    expect(byTestId(chips[0]!, "lw-chip-label").textContent).toContain(XSS);
    expect(host.querySelector("img")).toBeNull();
    expect(corrupted.dataset.patchedCells).toBe("1"); // enabled resid_pre chips only
    byTestId(chips[0]!, "lw-chip-remove").click();
    expect(model.sent.at(-1)).toEqual({ type: "remove_patch", id: 3 });
    const toggle = byTestId<HTMLInputElement>(chips[1]!, "lw-chip-toggle");
    toggle.checked = true;
    toggle.dispatchEvent(new Event("change", { bubbles: true }));
    expect(model.sent.at(-1)).toEqual({ type: "toggle_patch", id: 5, enabled: true });
    chips[2]!.focus();
    key(chips[2]!, " ");
    expect(model.sent.at(-1)).toEqual({ type: "toggle_patch", id: 6, enabled: false });
    key(chips[2]!, "Delete");
    expect(model.sent.at(-1)).toEqual({ type: "remove_patch", id: 6 });
    byTestId(host, "lw-clear-patches").click();
    expect(model.sent.at(-1)).toEqual({ type: "clear_patches" });
  });

  test("metric, before value and top tokens follow the kernel", () => {
    const { model, host } = setup();
    const metric = byTestId(host, "lw-metric");
    expect(metric.dataset.value).toBe("0");
    model.kernelUpdate({ metric_value: 0.9375, metric_before: 0 });
    expect(metric.dataset.value).toBe("0.9375");
    expect(byTestId(host, "lw-metric-value").textContent).toBe("0.938");
    expect(byTestId(host, "lw-metric-before").textContent).toContain("0.000");
    expect(byTestId(host, "lw-metric-bar").dataset.fraction).toBe("0.9375");
    const texts = (id: string) => allByTestId(byTestId(host, id), "lw-top-token").map((e) => e.textContent);
    expect(texts("lw-top-clean")).toEqual(["·Paris 50.0%"]);
    expect(texts("lw-top-corrupted")[0]).toContain(XSS.replace(/ /g, "·"));
    expect(host.querySelector("img")).toBeNull();
    model.kernelUpdate({ top_patched: [{ token: " Paris", id: 7, prob: 0.75, logit: 4 }] });
    expect(texts("lw-top-patched")).toEqual(["·Paris 75.0%"]);
    model.kernelUpdate({ metric_pending: true });
    expect(metric.dataset.pending).toBe("true");
  });

  test("sweep: buttons, progress, cancel and the overlay", () => {
    const stub = installCanvasStub();
    try {
      const { model, host, clean } = setup();
      byTestId(host, "lw-sweep-exact").click();
      expect(model.sent.at(-1)).toEqual({ type: "sweep", kind: "exact" });
      byTestId(host, "lw-sweep-estimate").click();
      expect(model.sent.at(-1)).toEqual({ type: "sweep", kind: "attribution" });
      expect(byTestId<HTMLButtonElement>(host, "lw-sweep-cancel").disabled).toBe(true);
      model.kernelUpdate({ sweep_state: "running", sweep_progress: [6, 15] });
      const bar = byTestId<HTMLProgressElement>(host, "lw-sweep-progress");
      expect([bar.dataset.done, bar.dataset.total, bar.hidden]).toEqual(["6", "15", false]);
      expect(byTestId(host, "lw-sweep-status").dataset.state).toBe("running");
      expect(byTestId<HTMLButtonElement>(host, "lw-sweep-exact").disabled).toBe(true);
      byTestId(host, "lw-sweep-cancel").click();
      expect(model.sent.at(-1)).toEqual({ type: "cancel_sweep" });
      const values = Array.from({ length: LAYERS * POS }, (_, i) => (i === 14 ? 1 : 0));
      model.kernelUpdate({ sweep_state: "done", sweep: { ...f32Payload(values, [LAYERS, POS]), act: "resid_pre", position: null, kind: "exact", complete: true } });
      expect(clean.dataset.overlay).toBe("exact");
      expect(byTestId(host, "lw-legend-caption").textContent).toContain("exact sweep");
      expect(byTestId(host, "lw-legend").dataset.scale).toBe("diverging");
      const toggle = byTestId<HTMLInputElement>(host, "lw-overlay-toggle");
      toggle.checked = false;
      toggle.dispatchEvent(new Event("change"));
      expect(clean.dataset.overlay).toBe("diff");
      toggle.checked = true;
      toggle.dispatchEvent(new Event("change"));
      model.kernelUpdate({ act: "mlp_out" }); // a sweep of another activation is not shown
      expect(clean.dataset.overlay).toBe("diff");
      expect(stub.calls.some((c) => c.op === "putImageData")).toBe(true);
    } finally {
      stub.restore();
    }
  });

  test("copy as code writes the code trait to the clipboard", async () => {
    const write = vi.fn(async () => {});
    const original = navigator.clipboard.writeText;
    navigator.clipboard.writeText = write as typeof navigator.clipboard.writeText;
    try {
      const { host, model } = setup();
      model.kernelUpdate({ code: "fwd_hooks = []\n" });
      expect(byTestId(host, "lw-code").textContent).toBe("fwd_hooks = []\n");
      byTestId(host, "lw-copy-code").click();
      await vi.waitFor(() => expect(byTestId(host, "lw-copy-code").dataset.copied).toBe("true"));
      expect(write).toHaveBeenCalledWith("fwd_hooks = []\n");
    } finally {
      navigator.clipboard.writeText = original;
    }
  });

  test("editable prompts send set_prompts; errors and notices show as text", () => {
    const { model, host } = setup({ error: `bad ${XSS}` });
    expect(byTestId(host, "lw-error-text").textContent).toBe(`bad ${XSS}`);
    expect(host.querySelector("img")).toBeNull();
    byTestId<HTMLTextAreaElement>(host, "lw-corrupted-prompt").value = "The dog sat on";
    byTestId(host, "lw-apply-prompts").click();
    expect(model.sent.at(-1)).toEqual({ type: "set_prompts", clean: "The cat sat", corrupted: "The dog sat on" });
    model.kernelUpdate({ notice: "removed chips" });
    expect(byTestId(host, "lw-notice").hidden).toBe(false);
    model.kernelUpdate({ editable: false });
    expect(byTestId(host, "lw-apply-prompts").parentElement!.hidden).toBe(true);
  });

  test("cleanup removes listeners (also of a drag in progress) and DOM", () => {
    const { model, host, cleanup, clean } = setup();
    pointer("pointerdown", clean, at(CLEAN_X, 0, 0));
    cleanup();
    pointer("pointermove", window, at(CORRUPTED_X, 0, 0));
    pointer("pointerup", window, at(CORRUPTED_X, 0, 0));
    expect(model.sent).toEqual([]);
    expect(model.listenerCount()).toBe(0);
    expect(host.children).toHaveLength(0);
  });
});
