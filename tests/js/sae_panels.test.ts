/**
 * The SAE panels (src/saes/) mounted into the residual explorer and the patcher, as
 * src/shared/lazy.ts does once their bundle is loaded.
 */
import { afterEach, describe, expect, test } from "vitest";
import { PatcherView } from "../../src/patcher/view";
import { ResidualView } from "../../src/residual/view";
import { featureMessage, patcher as mountPatcher } from "../../src/saes/patcher";
import { residual as mountResidual } from "../../src/saes/residual";
import { mount } from "../../src/saes/index";
import { allByTestId, byTestId, f32Payload, FakeModel } from "./fakeModel";

const XSS = `<img src=x onerror="globalThis.__pwned=1">`;
const HOOK = "blocks.1.hook_resid_post";

afterEach(() => {
  document.body.replaceChildren();
  expect((globalThis as { __pwned?: number }).__pwned).toBeUndefined();
});

function residual(extra: Record<string, unknown> = {}) {
  const model = new FakeModel({
    prompts: ["The cat sat"],
    tokens: ["<bos>", "The", " cat", XSS],
    n_prompts: 1,
    pos: 3,
    answer: [" on"],
    incorrect: [],
    metric: "logit",
    editable: true,
    n_layers: 2,
    n_heads: 2,
    top_k: 10,
    path: [],
    bars: { level: "components", layer: null, labels: ["embed"], kinds: ["embed"], prompt: null, values: f32Payload([0.5], [1]) },
    check: {},
    head_grid: {},
    detail: {},
    lens: {},
    lens_grid: {},
    sort: "layer",
    all_heads: false,
    prompt_index: null,
    view: "attribution",
    saes: [
      { hook: HOOK, label: "L1 resid_post", d_sae: 64, value: 1.25 },
      { hook: "blocks.1.hook_mlp_out", label: "L1 mlp_out", d_sae: 32, value: -0.5 },
    ],
    sae_path: [],
    sae_bars: {},
    sae_check: {},
    sae_detail: {},
    ...extra,
  });
  const host = document.createElement("div");
  document.body.append(host);
  const view = new ResidualView(model, host);
  const unmount = mountResidual(model, view.frame);
  return { model, host, view, unmount };
}

const FEATURE_BARS = {
  hook: HOOK,
  label: "L1 resid_post",
  labels: ["F5", "F12", "other features", "b_dec", "error"],
  kinds: ["feature", "feature", "remainder", "bias", "error"],
  prompt: null,
  values: f32Payload([1, -0.5, 0.25, 0.25, 0.25], [5]),
};

describe("residual explorer: SAE features", () => {
  test("SAE buttons -> feature bars (with error term) -> feature detail -> back", () => {
    const { model, host } = residual();
    const panel = byTestId(host, "lw-res-saes");
    expect(panel.hidden).toBe(false);
    const buttons = allByTestId(host, "lw-res-sae");
    expect(buttons.map((b) => b.dataset.hook)).toEqual([HOOK, "blocks.1.hook_mlp_out"]);
    expect(buttons[0]!.textContent).toBe("L1 resid_post · 1.250");
    buttons[0]!.click();
    expect(model.sent.at(-1)).toEqual({ type: "open_sae", hook: HOOK });
    model.kernelUpdate({ sae_path: [HOOK], sae_bars: FEATURE_BARS, sae_check: { sum: 1.25, target: 1.25, label: "DLA of L1 resid_post" }, revision: 1 });
    const bars = allByTestId(host, "lw-res-sae-bar");
    expect(bars.map((b) => b.dataset.label)).toEqual(FEATURE_BARS.labels);
    expect(bars.map((b) => b.dataset.openable)).toEqual(["true", "true", "false", "false", "false"]);
    expect(allByTestId(host, "lw-res-bar")).toHaveLength(1); // the component bars keep their own test ids
    expect(byTestId(host, "lw-res-sae-check").textContent).toBe("Σ bars = 1.250 · DLA of L1 resid_post = 1.250");
    expect(allByTestId(host, "lw-res-sae-crumb").map((c) => c.textContent)).toEqual(["SAEs", "L1 resid_post"]);
    bars[4]!.click(); // the error term does not open
    expect(model.sent).toHaveLength(1);
    bars[1]!.click();
    expect(model.sent.at(-1)).toEqual({ type: "open_feature", hook: HOOK, feature: 12 });
    model.kernelUpdate({
      sae_path: [HOOK, "F12"],
      sae_detail: {
        hook: HOOK, label: "F12", feature: 12, value: -0.5, activation: 2, pos: 3, prompt: 0, scale_max: 2,
        tokens: ["<bos>", "The", " cat", XSS], acts: f32Payload([900, 0, 0.5, 2], [4]),
        promoted: [" on", XSS], promoted_values: f32Payload([3, 2], [2]), suppressed: [" of"], suppressed_values: f32Payload([-1], [1]),
      },
      revision: 2,
    });
    const detail = byTestId(host, "lw-res-feature");
    expect(detail.hidden).toBe(false);
    expect(byTestId(host, "lw-res-feature-title").textContent).toBe("F12: attribution -0.500 · activation 2.000 at the attributed position");
    const toks = allByTestId(byTestId(host, "lw-res-feature-acts"), "lw-token");
    expect(toks.map((t) => t.dataset.act)).toEqual(["900", "0", "0.5", "2"]);
    expect(allByTestId(detail, "lw-act-value").map((v) => v.textContent)).toEqual(["900.000", "0", "0.500", "2.000"]);
    expect(toks[3]!.classList.contains("lw-hl")).toBe(true);
    expect(detail.querySelector("img")).toBeNull();
    expect(allByTestId(byTestId(host, "lw-res-feature-promoted"), "lw-res-feature-token").map((t) => t.dataset.token)).toEqual([" on", XSS]);
    // crumbs back to the SAE list
    allByTestId(host, "lw-res-sae-crumb")[0]!.click();
    expect(model.sent.at(-1)).toEqual({ type: "sae_back", depth: 0 });
  });

  test("no SAEs: the panel is hidden; unmounting removes it and its listeners", () => {
    const { host, model, view, unmount } = residual({ saes: [] });
    expect(byTestId(host, "lw-res-saes").hidden).toBe(true);
    expect(byTestId(host, "lw-res-saes").closest(".lw-res-main")).not.toBeNull();
    unmount();
    expect(host.querySelector("[data-testid='lw-res-saes']")).toBeNull();
    view.dispose();
    expect(model.listenerCount()).toBe(0);
  });

  test("the frame imports the module the kernel sends and mounts it; a broken module is reported", async () => {
    const ok = residual({ sae_esm: "data:text/javascript,export function mount(m, f) { f.root.dataset.mounted = 'yes'; }" });
    const bad = residual({ sae_esm: "data:text/javascript,export const mount = ;" });
    await new Promise((r) => setTimeout(r, 300));
    expect(ok.view.frame.root.dataset.mounted).toBe("yes");
    expect(byTestId(bad.view.frame.root, "lw-error").hidden).toBe(false);
    expect(byTestId(ok.view.frame.root, "lw-error").hidden).toBe(true);
  });

  test("mount picks the panel from the widget kind and removes it with the view", () => {
    const { host, model, view, unmount } = residual();
    unmount(); // the panel mounted by the test setup
    mount(model, view.frame);
    expect(allByTestId(host, "lw-res-saes")).toHaveLength(1);
    view.dispose();
    expect(host.querySelector("[data-testid='lw-res-saes']")).toBeNull();
    expect(model.listenerCount()).toBe(0);
  });
});

const CELL = 10;
const POS = 5;

function box(node: Element, left: number, top: number, width: number, height: number): void {
  Object.defineProperty(node, "getBoundingClientRect", {
    configurable: true,
    value: () => ({ left, top, right: left + width, bottom: top + height, width, height, x: left, y: top, toJSON() {} }),
  });
}

function patcher(extra: Record<string, unknown> = {}) {
  const model = new FakeModel({
    acts: ["resid_pre"],
    act_labels: {},
    act: "resid_pre",
    head_position: null,
    prompt_index: 0,
    ablation: "zero",
    dims: { n_layers: 2, n_pos: POS, n_heads: 2, n_kv_heads: 2, batch: 1 },
    clean_str_tokens: ["<bos>", "The", " cat", " sat", XSS],
    corrupted_str_tokens: ["<bos>", "The", " dog", " sat", " on"],
    token_differs: [false, false, true, false, true],
    cell_diff: f32Payload(Array(2 * POS).fill(0.5), [2, POS]),
    patches: [],
    metric_value: 0,
    metric_clean: 1,
    metric_corrupted: 0,
    sweep: { buffer: new DataView(new ArrayBuffer(0)), shape: [0], dtype: "float32", scale: 1, offset: 0, act: "", position: null, kind: "", complete: false },
    sweep_state: "idle",
    sweep_progress: [0, 0],
    cell_size: CELL,
    saes: [{ hook: HOOK, label: "L1 resid_post", d_sae: 64 }],
    feature_sae: HOOK,
    feature_top_k: 3,
    feature_grid: { hook: HOOK, label: "L1 resid_post", features: [40, 7, 22], kind: "attribution", ...f32Payload(Array.from({ length: 3 * POS }, (_, i) => i / 15), [3, POS]) },
    feature_patches: [],
    ...extra,
  });
  const host = document.createElement("div");
  document.body.append(host);
  const view = new PatcherView(model, host);
  mountPatcher(model, view.frame);
  const grid = byTestId<HTMLCanvasElement>(host, "lw-feature-grid");
  const corrupted = byTestId<HTMLCanvasElement>(host, "lw-corrupted-grid");
  const ablate = byTestId(host, "lw-ablate-target");
  box(grid, 0, 0, POS * CELL, 3 * CELL);
  box(corrupted, 500, 0, POS * CELL, 2 * CELL);
  box(ablate, 1000, 0, 100, 50);
  return { model, host, view, grid, corrupted, ablate };
}

function pointer(type: string, target: EventTarget, x: number, y: number, shift = false): void {
  target.dispatchEvent(new PointerEvent(type, { clientX: x, clientY: y, bubbles: true, button: 0, shiftKey: shift }));
}

function drag(grid: Element, from: [number, number], to: [number, number]): void {
  pointer("pointerdown", grid, ...from);
  for (let i = 1; i <= 4; i++) pointer("pointermove", window, from[0] + ((to[0] - from[0]) * i) / 4, from[1] + ((to[1] - from[1]) * i) / 4);
  pointer("pointerup", window, ...to);
}

const at = (r: number, c: number): [number, number] => [(c + 0.5) * CELL, (r + 0.5) * CELL];

describe("patcher: SAE feature grid", () => {
  test("the grid shows the top features x positions, rows labelled by feature", () => {
    const { host, grid } = patcher();
    expect([grid.dataset.rows, grid.dataset.cols]).toEqual(["3", String(POS)]);
    expect(grid.dataset.features).toBe("40,7,22");
    expect(grid.dataset.kind).toBe("attribution");
    expect([...byTestId(host, "lw-features").querySelectorAll(".lw-row-label")].map((e) => e.textContent)).toEqual(["F40", "F7", "F22"]);
    expect(byTestId(host, "lw-features").querySelector("img")).toBeNull();
  });

  test("dragging feature cells onto the corrupted grid patches them; onto the ablate target ablates", () => {
    const { model, grid } = patcher();
    drag(grid, at(1, 2), [520, 5]);
    expect(model.sent.at(-1)).toEqual({ type: "add_feature_patch", hook: HOOK, features: [7], positions: [2, 2], mode: "clean" });
    // shift-select F7..F22 x positions 1..3, then drag the selection to the ablate target
    pointer("pointerdown", grid, ...at(1, 1));
    pointer("pointerup", window, ...at(1, 1));
    pointer("pointerdown", grid, ...at(2, 3), true);
    pointer("pointerup", window, ...at(2, 3));
    expect(grid.dataset.selection).toBe("1,1,2,3");
    drag(grid, at(2, 2), [1020, 10]);
    expect(model.sent.at(-1)).toEqual({ type: "add_feature_patch", hook: HOOK, features: [7, 22], positions: [1, 3], mode: "zero" });
    // released elsewhere: nothing
    const n = model.sent.length;
    drag(grid, at(0, 0), [300, 300]);
    expect(model.sent.length).toBe(n);
  });

  test("feature chips list the kernel's feature patches; remove / toggle / sweep send messages", () => {
    const { model, host } = patcher({ feature_patches: [{ id: 3, hook: HOOK, features: [7], positions: [2], mode: "clean", enabled: true, label: "F7 @ L1 resid_post · pos 2" }] });
    const chips = byTestId(host, "lw-feature-chips");
    expect(byTestId(host, "lw-feature-grid").dataset.patchedCells).toBe("1"); // F7 (row 1) at position 2
    expect(allByTestId(chips, "lw-chip-label").map((c) => c.textContent)).toEqual(["F7 @ L1 resid_post · pos 2"]);
    byTestId(chips, "lw-chip-remove").click();
    expect(model.sent.at(-1)).toEqual({ type: "remove_feature_patch", id: 3 });
    byTestId(host, "lw-clear-feature-patches").click();
    expect(model.sent.at(-1)).toEqual({ type: "clear_feature_patches" });
    byTestId(host, "lw-feature-exact").click();
    expect(model.sent.at(-1)).toEqual({ type: "feature_sweep", kind: "exact" });
    expect(allByTestId(host, "lw-clear-patches")).toHaveLength(1); // the activation chips' button keeps its id
  });

  test("keyboard: arrows select, Shift extends, Enter patches, a ablates, Escape clears", () => {
    const { model, grid } = patcher({ ablation: "mean" });
    const key = (k: string, shift = false) => grid.dispatchEvent(new KeyboardEvent("keydown", { key: k, shiftKey: shift, bubbles: true }));
    key("ArrowDown"); // the first press puts the cursor on (0, 0)
    key("ArrowDown", true);
    key("ArrowRight", true);
    expect(grid.dataset.selection).toBe("0,0,1,1");
    key("Enter");
    expect(model.sent.at(-1)).toEqual({ type: "add_feature_patch", hook: HOOK, features: [40, 7], positions: [0, 1], mode: "clean" });
    key("a");
    expect(model.sent.at(-1)).toEqual({ type: "add_feature_patch", hook: HOOK, features: [40, 7], positions: [0, 1], mode: "mean" });
    key("Escape");
    expect(grid.dataset.selection).toBe("");
    const n = model.sent.length;
    key("Enter"); // nothing selected: nothing sent
    expect(model.sent.length).toBe(n);
  });

  test("featureMessage picks the rows' features and the columns' positions", () => {
    expect(featureMessage("h", [9, 8, 7], { r0: 0, c0: 3, r1: 1, c1: 4 }, "mean")).toEqual({ type: "add_feature_patch", hook: "h", features: [9, 8], positions: [3, 4], mode: "mean" });
  });

  test("no SAEs: the feature panel is hidden", () => {
    const { host } = patcher({ saes: [], feature_grid: {} });
    expect(byTestId(host, "lw-features").hidden).toBe(true);
  });
});
