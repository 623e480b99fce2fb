import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { barOrder } from "../../src/residual/order";
import { render } from "../../src/residual/view";
import { installCanvasStub, installDownloadStub } from "./canvasStub";
import { allByTestId, byTestId, centre, f32Payload, FakeModel, mouse, u8Payload } from "./fakeModel";

const XSS = `<img src=x onerror="globalThis.__pwned=1">`;
const XSS_SHOWN = XSS.replace(/ /g, "·"); // tokens are shown with visible whitespace
const TOKENS = ["<bos>", "The", " cat", XSS];
const N = TOKENS.length;

// A 2-layer, 2-head model, as lenswidget/widgets/residual/widget.py would send it.
const COMPONENTS = {
  level: "components",
  layer: null,
  labels: ["embed", "pos_embed", "0_attn_out", "0_mlp_out", "1_attn_out", "1_mlp_out"],
  kinds: ["embed", "embed", "attn", "mlp", "attn", "mlp"],
  prompt: null,
  values: f32Payload([0.5, -0.25, 1.5, -2, 0.75, 0.125], [6]),
};
const CHECK = { sum: 0.625, target: 0.625, label: "model: logit − b_U", metric: "logit − b_U" };

const HEADS_L1 = {
  level: "heads",
  layer: 1,
  labels: ["L1H0", "L1H1", "L1 b_O"],
  kinds: ["head", "head", "bias"],
  prompt: null,
  values: f32Payload([-0.25, 1, 0], [3]),
};

function pattern(n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out.push(j > i ? 0 : 1 / (i + 1));
  return out;
}

const DETAIL_L1H1 = {
  kind: "head",
  label: "L1H1",
  layer: 1,
  index: 1,
  prompt: 0,
  value: 1,
  pos: N - 1,
  promoted: [" mat", XSS],
  promoted_values: f32Payload([2, 1.5], [2]),
  suppressed: [" dog", "\n"],
  suppressed_values: f32Payload([-3, -1], [2]),
  tokens: TOKENS,
  row: f32Payload(pattern(N).slice((N - 1) * N), [N]),
  pattern: u8Payload(pattern(N), [N, N]),
};

function setup(extra: Record<string, unknown> = {}) {
  const model = new FakeModel({
    prompts: ["The cat sat", "The dog sat"],
    tokens: TOKENS,
    n_prompts: 2,
    pos: N - 1,
    answer: [" on", " on"],
    incorrect: [],
    metric: "logit",
    editable: true,
    n_layers: 2,
    n_heads: 2,
    top_k: 10,
    path: [],
    bars: COMPONENTS,
    check: CHECK,
    head_grid: {},
    detail: {},
    lens: {},
    lens_grid: {},
    sort: "layer",
    all_heads: false,
    prompt_index: null,
    view: "attribution",
    ...extra,
  });
  const host = document.createElement("div");
  document.body.append(host);
  const cleanup = render({ model, el: host });
  return { model, host, cleanup };
}

function barLabels(host: HTMLElement): string[] {
  return allByTestId(host, "lw-res-bar").map((b) => b.dataset.label ?? "");
}

function bar(host: HTMLElement, label: string): HTMLElement {
  const node = host.querySelector<HTMLElement>(`[data-testid="lw-res-bar"][data-label="${label}"]`);
  if (!node) throw new Error(`no bar ${label}`);
  return node;
}

function crumbs(host: HTMLElement): string[] {
  return allByTestId(host, "lw-res-crumb").map((c) => c.textContent ?? "");
}

beforeEach(() => document.body.replaceChildren());
afterEach(() => {
  document.body.replaceChildren();
  expect((globalThis as { __pwned?: number }).__pwned).toBeUndefined();
});

describe("residual explorer: bars and drill-down", () => {
  test("renders the component bars, their values and the sum check", () => {
    const { host } = setup();
    expect(byTestId(host, "lw-root").dataset.widget).toBe("residual");
    expect(barLabels(host)).toEqual(COMPONENTS.labels);
    expect(allByTestId(host, "lw-res-bar-value").map((v) => v.textContent)).toEqual(["0.500", "-0.250", "1.500", "-2.000", "0.750", "0.125"]);
    expect(bar(host, "0_mlp_out").dataset.value).toBe("-2");
    expect(bar(host, "embed").dataset.openable).toBe("false");
    expect(bar(host, "1_attn_out").dataset.openable).toBe("true");
    expect(byTestId(host, "lw-res-bars").dataset.level).toBe("components");
    const check = byTestId(host, "lw-res-check");
    expect(check.textContent).toBe("Σ bars = 0.625 · model: logit − b_U = 0.625");
    expect(check.dataset.ok).toBe("true");
    expect(crumbs(host)).toEqual(["All components"]);
    expect(byTestId(host, "lw-res-detail").hidden).toBe(true);
    expect(byTestId(host, "lw-res-lens").hidden).toBe(true);
  });

  test("bars -> heads -> head detail -> breadcrumbs back", () => {
    const { model, host } = setup();
    const root = byTestId(host, "lw-root");

    bar(host, "1_attn_out").click();
    expect(model.sent.at(-1)).toEqual({ type: "select", component: "1_attn_out" });
    expect(root.dataset.busy).toBe("true");
    model.answer({ path: ["1_attn_out"], bars: HEADS_L1, check: { ...CHECK, sum: 0.75, target: 0.75, label: "1_attn_out" } });
    expect(root.dataset.busy).toBe("false");
    expect(barLabels(host)).toEqual(["L1H0", "L1H1", "L1 b_O"]);
    expect(byTestId(host, "lw-res-bars").dataset.level).toBe("heads");
    expect(byTestId(host, "lw-res-bars").dataset.layer).toBe("1");
    expect(bar(host, "L1 b_O").dataset.openable).toBe("false");
    expect(crumbs(host)).toEqual(["All components", "1_attn_out"]);
    expect(byTestId(host, "lw-res-check").textContent).toBe("Σ bars = 0.750 · 1_attn_out = 0.750");

    bar(host, "L1H1").click();
    expect(model.sent.at(-1)).toEqual({ type: "select", component: "L1H1" });
    model.answer({ path: ["1_attn_out", "L1H1"], detail: DETAIL_L1H1 });
    const detail = byTestId(host, "lw-res-detail");
    expect(detail.hidden).toBe(false);
    expect(detail.dataset.label).toBe("L1H1");
    expect(byTestId(host, "lw-res-detail-title").textContent).toBe("L1H1: 1.000 · prompt 0");
    expect(bar(host, "L1H1").dataset.selected).toBe("true");
    const canvas = byTestId<HTMLCanvasElement>(host, "lw-attn-canvas");
    expect([canvas.dataset.rows, canvas.dataset.cols, canvas.dataset.layer, canvas.dataset.head]).toEqual([String(N), String(N), "1", "1"]);
    expect(canvas.dataset.highlight).toBe(String(N - 1));
    expect(byTestId(host, "lw-head-label").textContent).toBe("L1H1 (locked)");
    const from = allByTestId(byTestId(host, "lw-res-attn-from"), "lw-token");
    expect(from.map((t) => t.textContent)).toEqual(["<bos>", "The", "·cat", XSS_SHOWN]);
    expect(from.map((t) => Number(t.dataset.value))).toEqual([0.25, 0.25, 0.25, 0.25]);
    const promoted = allByTestId(byTestId(host, "lw-res-promoted"), "lw-res-top-token");
    expect(promoted.map((p) => p.querySelector(".lw-token")!.textContent)).toEqual(["·mat", XSS_SHOWN]);
    expect(promoted.map((p) => p.dataset.value)).toEqual(["2", "1.5"]);
    const suppressed = allByTestId(byTestId(host, "lw-res-suppressed"), "lw-res-top-token");
    expect(suppressed.map((p) => p.querySelector(".lw-token")!.textContent)).toEqual(["·dog", "⏎"]);
    expect(detail.querySelector("img")).toBeNull();
    expect(crumbs(host)).toEqual(["All components", "1_attn_out", "L1H1"]);

    // clicking the open head again goes back one level
    bar(host, "L1H1").click();
    expect(model.sent.at(-1)).toEqual({ type: "back", depth: 1 });
    // breadcrumbs: the current crumb does nothing, earlier ones go back
    allByTestId(host, "lw-res-crumb")[2]!.click();
    expect(model.sent.at(-1)).toEqual({ type: "back", depth: 1 });
    const sent = model.sent.length;
    allByTestId(host, "lw-res-crumb")[0]!.click();
    expect(model.sent.at(-1)).toEqual({ type: "back", depth: 0 });
    expect(model.sent.length).toBe(sent + 1);
    model.answer({ path: [], bars: COMPONENTS, check: CHECK, detail: {} });
    expect(barLabels(host)).toEqual(COMPONENTS.labels);
    expect(byTestId(host, "lw-res-detail").hidden).toBe(true);
    expect(crumbs(host)).toEqual(["All components"]);
    // non-openable bars send nothing
    const before = model.sent.length;
    bar(host, "embed").click();
    expect(model.sent.length).toBe(before);
  });

  test("keyboard opens a bar; hover explains it", () => {
    const { model, host } = setup();
    bar(host, "0_mlp_out").dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
    expect(model.sent.at(-1)).toEqual({ type: "select", component: "0_mlp_out" });
    mouse("mousemove", bar(host, "0_attn_out"));
    const tip = byTestId(host, "lw-tooltip");
    expect([...tip.children].map((c) => c.textContent)).toEqual(["0_attn_out", "1.500", "click: this layer's heads"]);
  });

  test("sort by value reorders locally and syncs `sort`; bias / remainder stay last", () => {
    const { model, host } = setup({ path: ["1_attn_out"], bars: HEADS_L1 });
    const sort = byTestId<HTMLSelectElement>(host, "lw-res-sort");
    sort.value = "value";
    sort.dispatchEvent(new Event("change"));
    expect(model.saves.at(-1)).toEqual({ sort: "value" });
    expect(barLabels(host)).toEqual(["L1H1", "L1H0", "L1 b_O"]);
    model.kernelUpdate({ bars: COMPONENTS, path: [] });
    expect(barLabels(host)).toEqual(["0_attn_out", "1_attn_out", "embed", "1_mlp_out", "pos_embed", "0_mlp_out"]);
    expect(bar(host, "0_attn_out").dataset.index).toBe("2");
    sort.value = "layer";
    sort.dispatchEvent(new Event("change"));
    expect(barLabels(host)).toEqual(COMPONENTS.labels);
    expect(barOrder([1, 5, 3, 9], ["neuron", "neuron", "neuron", "remainder"], "value")).toEqual([1, 2, 0, 3]);
    expect(barOrder([1, -5, NaN, 3, 9], ["neuron", "neuron", "neuron", "neuron", "remainder"], "abs")).toEqual([1, 3, 0, 2, 4]);
  });

  test("by default the biggest contributions come first; tiny bars stay visible", () => {
    const { host } = setup({ sort: "abs", bars: { ...COMPONENTS, values: f32Payload([0.5, -0.25, 1.5, -2, 0.00001, 0], [6]) } });
    expect(byTestId<HTMLSelectElement>(host, "lw-res-sort").value).toBe("abs");
    expect(barLabels(host)).toEqual(["0_mlp_out", "0_attn_out", "embed", "pos_embed", "1_attn_out", "1_mlp_out"]);
    const fill = (label: string) => bar(host, label).querySelector<HTMLElement>(".lw-res-bar-fill")!;
    expect(fill("1_attn_out").style.minWidth).toBe("2px"); // 1e-5 of a bound of 2
    expect(fill("1_mlp_out").style.minWidth).toBe(""); // exactly zero: no bar
    expect(fill("0_mlp_out").style.right).toBe("50%"); // negative bars grow left from the zero line
    expect(fill("0_attn_out").style.left).toBe("50%");
    // the colour of a tiny bar is not the (background-like) midpoint of the scale
    expect(fill("1_attn_out").style.backgroundColor).not.toBe(fill("1_mlp_out").style.backgroundColor);
  });

  test("one prompt: no 'mean of 1 prompt', nothing to choose", () => {
    const { host } = setup({ n_prompts: 1, prompts: ["The cat sat on the"] });
    const select = byTestId<HTMLSelectElement>(host, "lw-res-prompt-select");
    expect([...select.options].map((o) => o.textContent)).toEqual(["the prompt: The cat sat on the"]);
    expect(select.disabled).toBe(true);
    expect(host.textContent).not.toContain("mean of 1");
  });

  test("one kernel update repaints each changed panel once, and only those", () => {
    const { model, host } = setup();
    const barsNode = byTestId(host, "lw-res-bars");
    const table = byTestId(host, "lw-res-lens-table");
    let barRenders = 0;
    const observer = { n: 0 };
    const orig = barsNode.replaceChildren.bind(barsNode);
    barsNode.replaceChildren = (...nodes: (string | Node)[]) => {
      barRenders++;
      orig(...nodes);
    };
    const tableOrig = table.replaceChildren.bind(table);
    table.replaceChildren = (...nodes: (string | Node)[]) => {
      observer.n++;
      tableOrig(...nodes);
    };
    byTestId(host, "lw-res-bar").click(); // embed is not openable
    bar(host, "1_attn_out").click();
    model.answer({ path: ["1_attn_out"], bars: HEADS_L1, check: { ...CHECK, label: "1_attn_out" } });
    expect(barRenders).toBe(1); // path, bars and check changed: one repaint
    expect(observer.n).toBe(0); // the lens did not change: untouched
    expect(barLabels(host)).toEqual(["L1H0", "L1H1", "L1 b_O"]);
  });

  test("all-heads switch shows the layer x head heatmap; clicking a cell opens the head", () => {
    const { model, host } = setup();
    const box = byTestId<HTMLInputElement>(host, "lw-res-all-heads");
    box.checked = true;
    box.dispatchEvent(new Event("change"));
    expect(model.saves.at(-1)).toEqual({ all_heads: true });
    model.answer({ all_heads: true, head_grid: f32Payload([0.5, -1, -0.25, 1], [2, 2]) });
    expect(byTestId(host, "lw-res-bars").hidden).toBe(true);
    expect(byTestId(host, "lw-res-heads").hidden).toBe(false);
    const canvas = byTestId<HTMLCanvasElement>(host, "lw-res-heads-canvas");
    expect([canvas.dataset.rows, canvas.dataset.cols]).toEqual(["2", "2"]);
    expect(allByTestId(host, "lw-res-heads-row-label").map((l) => l.textContent)).toEqual(["L0", "L1"]);
    expect(allByTestId(host, "lw-res-heads-col-label").map((l) => l.textContent)).toEqual(["H0", "H1"]);
    mouse("mousemove", canvas, ...centre(canvas, 1, 1));
    expect([...byTestId(host, "lw-tooltip").children].map((c) => c.textContent)).toEqual(["L1H1", "1.000"]);
    expect(canvas.dataset.hover).toBe("1,1");
    mouse("click", canvas, ...centre(canvas, 1, 0));
    expect(model.sent.at(-1)).toEqual({ type: "select", component: "L1H0" });
    model.kernelUpdate({ path: ["1_attn_out", "L1H0"], detail: { ...DETAIL_L1H1, label: "L1H0", index: 0 } });
    expect(canvas.dataset.selected).toBe("1,0");
    expect(byTestId(host, "lw-res-detail").dataset.label).toBe("L1H0");
    mouse("click", canvas, ...centre(canvas, 1, 0));
    expect(model.sent.at(-1)).toEqual({ type: "back", depth: 1 });
    box.checked = false;
    box.dispatchEvent(new Event("change"));
    model.kernelUpdate({ all_heads: false, head_grid: {} });
    expect(byTestId(host, "lw-res-bars").hidden).toBe(false);
    expect(byTestId(host, "lw-res-heads").hidden).toBe(true);
  });
});

describe("residual explorer: pickers", () => {
  test("token picker sends the typed strings exactly (Apply or Enter)", () => {
    const { model, host } = setup();
    const answer = byTestId<HTMLInputElement>(host, "lw-res-answer");
    const incorrect = byTestId<HTMLInputElement>(host, "lw-res-incorrect");
    expect(answer.value).toBe(" on");
    expect(incorrect.value).toBe("");
    expect(byTestId(host, "lw-res-answer-current").textContent).toBe('logit of "·on"');
    answer.value = " Paris";
    incorrect.value = " Rome";
    byTestId(host, "lw-res-apply").click();
    expect(model.sent.at(-1)).toEqual({ type: "set_answer", answer: " Paris", incorrect: " Rome" });
    expect(byTestId(host, "lw-root").dataset.busy).toBe("true");
    answer.value = "#42";
    incorrect.value = "";
    answer.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter" }));
    expect(model.sent.at(-1)).toEqual({ type: "set_answer", answer: "#42", incorrect: "" });
    model.answer({ answer: [" the", " the"], incorrect: [" to", " to"], metric: "logit_diff" });
    expect(byTestId(host, "lw-res-answer-current").textContent).toBe('logit diff: "·the" − "·to"');
  });

  test("a rejected pick shows the kernel's error; the bars stay", () => {
    const { model, host } = setup();
    byTestId(host, "lw-res-apply").click();
    expect(byTestId(host, "lw-root").dataset.busy).toBe("true");
    model.answer({ error: "answer: ' Paris is' is 2 tokens, not 1: [' Paris', ' is']" }, model.lastRequest(), false);
    expect(byTestId(host, "lw-root").dataset.busy).toBe("false");
    expect(byTestId(host, "lw-error").hidden).toBe(false);
    expect(byTestId(host, "lw-error-text").textContent).toContain("[' Paris', ' is']");
    expect(barLabels(host)).toEqual(COMPONENTS.labels);
  });

  test("prompts box sends one prompt per line; prompt selector sets prompt_index", () => {
    const { model, host } = setup();
    const box = byTestId<HTMLTextAreaElement>(host, "lw-res-prompts");
    expect(box.value).toBe("The cat sat\nThe dog sat");
    expect(box.disabled).toBe(false);
    box.value = "A b c\n\nD e f\n";
    byTestId(host, "lw-res-run").click();
    expect(model.sent.at(-1)).toEqual({ type: "set_prompts", prompts: ["A b c", "D e f"] });
    const select = byTestId<HTMLSelectElement>(host, "lw-res-prompt-select");
    expect([...select.options].map((o) => o.textContent)).toEqual(["mean of 2 prompts", "prompt 0: The cat sat", "prompt 1: The dog sat"]);
    select.value = "1";
    select.dispatchEvent(new Event("change"));
    expect(model.saves.at(-1)).toEqual({ prompt_index: 1 });
    select.value = "mean";
    select.dispatchEvent(new Event("change"));
    expect(model.saves.at(-1)).toEqual({ prompt_index: null });
    model.kernelUpdate({ editable: false });
    expect(box.disabled).toBe(true);
  });
});

describe("residual explorer: logit lens", () => {
  const LENS = {
    labels: ["0_pre", "0_mid", "1_pre", "1_mid", "final_post"],
    prompt: null,
    metric: "logit",
    rank: f32Payload([120, 40, 3, 1, 0], [5]),
    prob: f32Payload([0.001, 0.01, 0.125, 0.25, 0.5], [5]),
    logit: f32Payload([-1, 0.5, 2, 3, 4], [5]),
  };
  // 4 positions x 3 layers x top-2; vocab indices
  const VOCAB = [" the", XSS, "\n", " on"];
  const ids: number[] = [];
  const probs: number[] = [];
  for (let p = 0; p < N; p++) {
    for (let l = 0; l < 3; l++) {
      ids.push((p + l) % 4, (p + l + 1) % 4);
      probs.push(0.5, 0.25);
    }
  }
  const GRID = {
    prompt: 0,
    labels: ["0_pre", "1_pre", "final_post"],
    tokens: TOKENS,
    vocab: VOCAB,
    vocab_ids: [5, 6, 7, 8],
    ids: f32Payload(ids, [N, 3, 2]),
    probs: f32Payload(probs, [N, 3, 2]),
  };

  test("the lens tab shows rank / prob / logit per layer and the top-token grid", () => {
    const stub = installCanvasStub();
    try {
      const { model, host } = setup();
      const tabs = allByTestId(host, "lw-res-tab");
      expect(tabs.map((t) => t.getAttribute("aria-selected"))).toEqual(["true", "false"]);
      tabs[1]!.click();
      expect(model.saves.at(-1)).toEqual({ view: "lens" });
      model.answer({ view: "lens", lens: LENS, lens_grid: GRID });
      expect(byTestId(host, "lw-res-lens").hidden).toBe(false);
      expect(byTestId(host, "lw-res-bars").closest(".lw-res-main")!.hasAttribute("hidden")).toBe(true);
      const rows = allByTestId(host, "lw-res-lens-row");
      expect(rows.map((r) => r.dataset.label)).toEqual(LENS.labels);
      expect(rows.map((r) => r.dataset.rank)).toEqual(["120", "40", "3", "1", "0"]);
      expect(rows[4]!.dataset.prob).toBe("0.5");
      expect(rows[4]!.dataset.logit).toBe("4");
      const canvas = byTestId<HTMLCanvasElement>(host, "lw-res-lens-canvas");
      expect([canvas.dataset.rows, canvas.dataset.cols]).toEqual([String(N), "3"]);
      expect(allByTestId(host, "lw-res-lens-layer").map((l) => l.textContent)).toEqual(GRID.labels);
      expect(allByTestId(host, "lw-res-lens-pos").map((l) => l.textContent)).toEqual(["<bos>", "The", "·cat", XSS_SHOWN]);
      // token text is drawn on the canvas (as text), never inserted as HTML
      const drawn = stub.calls.filter((c) => c.op === "fillText").map((c) => c.args[0]);
      expect(drawn).toContain("·the");
      expect(drawn.some((t) => typeof t === "string" && t.startsWith("<img"))).toBe(true);
      mouse("mousemove", canvas, ...centre(canvas, 1, 2));
      expect([...byTestId(host, "lw-tooltip").children].map((c) => c.textContent)).toEqual([
        "final_post · The[1]",
        '" on"  0.500',
        '" the"  0.250',
      ]);
      expect(canvas.dataset.hover).toBe("1,2");
      expect(host.querySelector("img")).toBeNull();
      // keyboard: the grid is a grid for screen readers; arrows move, the tooltip follows
      expect(canvas.getAttribute("role")).toBe("grid");
      expect(allByTestId(canvas, "lw-grid-cell")).toHaveLength(N * 3);
      canvas.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowLeft" }));
      expect(canvas.dataset.hover).toBe("1,1");
      expect(canvas.getAttribute("aria-activedescendant")).toBe(allByTestId(canvas, "lw-grid-cell")[1 * 3 + 1]!.id);
      expect([...byTestId(host, "lw-tooltip").children][0]!.textContent).toBe("1_pre · The[1]");
      // the grid scrolls in its own box, labels stuck to the edges
      const scroller = byTestId(host, "lw-res-lens-scroll");
      expect(scroller.contains(canvas)).toBe(true);
      expect(scroller.querySelector(".lw-res-lens-rows")).not.toBeNull();
      tabs[0]!.click();
      expect(model.saves.at(-1)).toEqual({ view: "attribution" });
    } finally {
      stub.restore();
    }
  });

  test("logit-diff lens shows the difference column", () => {
    const { host } = setup({ view: "lens", metric: "logit_diff", lens: { ...LENS, metric: "logit_diff", diff: f32Payload([0, 0, 1, 2, 3], [5]) }, lens_grid: GRID });
    const rows = allByTestId(host, "lw-res-lens-row");
    expect(rows[4]!.dataset.diff).toBe("3");
    expect(byTestId(host, "lw-res-lens-table").querySelector("th:last-child")!.textContent).toBe("logit diff");
  });
});

describe("residual explorer: robustness and export", () => {
  test("malformed payloads are reported, not thrown", () => {
    const { host } = setup({ bars: { ...COMPONENTS, values: { buffer: new DataView(new ArrayBuffer(3)), shape: [6], dtype: "float32" } } });
    expect(byTestId(host, "lw-error").hidden).toBe(false);
    expect(byTestId(host, "lw-error-text").textContent).toContain("Could not decode bars");
  });

  test("exports the bars as SVG (escaped) and PNG", async () => {
    const stub = installCanvasStub();
    const { created, clicks, restore } = installDownloadStub();
    try {
      const { host, model } = setup({ path: ["1_attn_out"], bars: { ...HEADS_L1, labels: [XSS, "L1H1", "L1 b_O"] } });
      byTestId(host, "lw-export-svg").click();
      expect(clicks).toContain("residual-l1-heads.svg");
      expect(created[0]!.type).toBe("image/svg+xml");
      const svg = await created[0]!.text();
      expect(svg).toContain("&lt;img src=x");
      expect(svg).not.toContain("<img");
      expect(svg).toContain("Σ bars");
      byTestId(host, "lw-export-png").click();
      expect(stub.calls.some((c) => c.op === "fillText")).toBe(true);
      model.kernelUpdate({ all_heads: true, head_grid: f32Payload([0.5, -1, -0.25, 1], [2, 2]) });
      byTestId(host, "lw-export-svg").click();
      expect(clicks).toContain("residual-all-heads.svg");
    } finally {
      stub.restore();
      restore();
    }
  });

  test("cleanup removes listeners and DOM", () => {
    const { model, host, cleanup } = setup();
    expect(model.listenerCount()).toBeGreaterThan(0);
    cleanup();
    expect(model.listenerCount()).toBe(0);
    expect(host.children).toHaveLength(0);
  });
});
