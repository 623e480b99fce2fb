import { afterEach, describe, expect, test, vi } from "vitest";
import { AttentionView, render } from "../../src/attention/view";
import { installCanvasStub } from "./canvasStub";
import { allByTestId, byTestId, centre, FakeModel, mouse, u8Payload } from "./fakeModel";

const XSS = `<img src=x onerror="globalThis.__pwned=1">`;
const TOKENS = ["<bos>", "Hello", " world", XSS];

/** Causal pattern of head h in layer l: row i puts weight on token (i + l + h) % (i + 1) mostly. */
function pattern(n: number, l: number, h: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const hot = (i + l + h) % (i + 1);
    for (let j = 0; j < n; j++) out.push(j > i ? 0 : i === 0 ? 1 : j === hot ? 0.75 : 0.25 / i);
  }
  return out;
}

function thumbs(layers: number, heads: number, n: number): Record<string, unknown> {
  const vals: number[] = [];
  for (let l = 0; l < layers; l++) for (let h = 0; h < heads; h++) vals.push(...pattern(n, l, h));
  return u8Payload(vals, [layers, heads, n, n]);
}

function layerPattern(l: number, heads: number, n: number): Record<string, unknown> {
  const vals: number[] = [];
  for (let h = 0; h < heads; h++) vals.push(...pattern(n, l, h));
  return { ...u8Payload(vals, [heads, n, n]), layer: l };
}

function setup(extra: Record<string, unknown> = {}) {
  const model = new FakeModel({
    layers: [0, 1, 2],
    heads: [0, 1],
    head_names: [],
    layer: 0,
    head: null,
    prompt: "Hello world<img>",
    tokens: TOKENS,
    editable: true,
    debounce_ms: 300,
    thumbs: thumbs(3, 2, 4),
    pattern: layerPattern(0, 2, 4),
    ...extra,
  });
  const host = document.createElement("div");
  document.body.append(host);
  const cleanup = render({ model, el: host });
  const canvas = byTestId<HTMLCanvasElement>(host, "lw-attn-canvas");
  return { model, host, cleanup, canvas };
}

function thumb(host: HTMLElement, layer: number, head: number): HTMLCanvasElement {
  return host.querySelector(`[data-testid="lw-thumb"][data-layer="${layer}"][data-head="${head}"]`)!;
}

afterEach(() => {
  vi.useRealTimers();
  document.body.replaceChildren();
  delete document.body.dataset.jpThemeLight;
});

describe("attention inspector", () => {
  test("renders thumbnails, layer selector, labels and the big canvas", () => {
    const { host, canvas } = setup();
    expect(byTestId(host, "lw-root").dataset.widget).toBe("attention");
    expect(allByTestId(host, "lw-thumb")).toHaveLength(6);
    expect(allByTestId(host, "lw-thumb-row").map((r) => r.dataset.selected)).toEqual(["true", "false", "false"]);
    const select = byTestId<HTMLSelectElement>(host, "lw-layer-select");
    expect([...select.options].map((o) => o.textContent)).toEqual(["Layer 0", "Layer 1", "Layer 2"]);
    expect(select.value).toBe("0");
    expect(canvas.dataset.rows).toBe("4");
    expect(canvas.dataset.cols).toBe("4");
    expect(canvas.dataset.mode).toBe("default");
    expect(canvas.dataset.resolution).toBe("full");
    expect([canvas.dataset.layer, canvas.dataset.head]).toEqual(["0", "0"]);
    expect(byTestId(host, "lw-head-label").textContent).toBe("L0H0");
    expect(allByTestId(host, "lw-dest-label")).toHaveLength(4);
    expect(allByTestId(host, "lw-src-label")[1]!.textContent).toBe("Hello");
    expect(byTestId<HTMLTextAreaElement>(host, "lw-prompt").value).toBe("Hello world<img>");
    expect(byTestId(host, "lw-legend").dataset.scale).toBe("sequential");
  });

  test("tokens are rendered as text: no XSS through the strip or labels", () => {
    const { host } = setup();
    expect(host.querySelector("img")).toBeNull();
    const tokens = allByTestId(host, "lw-token");
    expect(tokens.map((t) => t.textContent)).toEqual(["<bos>", "Hello", "·world", XSS.replace(/ /g, "·")]);
    expect(tokens[3]!.title).toContain("<img");
    expect((globalThis as Record<string, unknown>).__pwned).toBeUndefined();
  });

  test("hovering a thumbnail previews it; leaving restores", () => {
    const { host, canvas } = setup();
    mouse("mouseover", thumb(host, 2, 1));
    expect(canvas.dataset.mode).toBe("preview");
    expect([canvas.dataset.layer, canvas.dataset.head]).toEqual(["2", "1"]);
    expect(thumb(host, 2, 1).dataset.preview).toBe("true");
    expect(byTestId(host, "lw-head-label").textContent).toBe("L2H1 (preview)");
    mouse("mouseleave", byTestId(host, "lw-thumb-grid"));
    expect(canvas.dataset.mode).toBe("default");
  });

  test("clicking a thumbnail locks it (set layer + head, save); clicking again unlocks", () => {
    const { model, host, canvas } = setup();
    thumb(host, 1, 1).click();
    expect(model.get("layer")).toBe(1);
    expect(model.get("head")).toBe(1);
    expect(model.saves.at(-1)).toEqual({ layer: 1, head: 1 });
    expect(thumb(host, 1, 1).dataset.locked).toBe("true");
    expect(byTestId(host, "lw-root").dataset.busy).toBe("true"); // waiting for layer 1's pattern
    // until it arrives, the canvas shows layer 1 from its thumbnail
    expect(canvas.dataset.layer).toBe("1");
    model.answer({ pattern: layerPattern(1, 2, 4) });
    expect(byTestId(host, "lw-root").dataset.busy).toBe("false");
    expect(canvas.dataset.mode).toBe("locked");
    thumb(host, 1, 1).click();
    expect(model.get("head")).toBeNull();
    expect(model.saves.at(-1)).toEqual({ head: null });
  });

  test("layer selector sets layer and saves", () => {
    const { model, host } = setup();
    const select = byTestId<HTMLSelectElement>(host, "lw-layer-select");
    select.value = "2";
    select.dispatchEvent(new Event("change"));
    expect(model.get("layer")).toBe(2);
    expect(model.saves.at(-1)).toEqual({ layer: 2 });
    expect(allByTestId(host, "lw-thumb-row").map((r) => r.dataset.selected)).toEqual(["false", "false", "true"]);
  });

  test("prompt edits are debounced, then synced; busy until the kernel answers", () => {
    vi.useFakeTimers();
    const { model, host } = setup();
    const box = byTestId<HTMLTextAreaElement>(host, "lw-prompt");
    const root = byTestId(host, "lw-root");
    for (const text of ["H", "Hi", "Hi there"]) {
      box.value = text;
      box.dispatchEvent(new Event("input"));
      vi.advanceTimersByTime(100);
    }
    expect(model.saves).toHaveLength(0);
    expect(root.dataset.busy).toBe("true");
    vi.advanceTimersByTime(300);
    expect(model.saves).toEqual([{ prompt: "Hi there" }]);
    model.answer({ tokens: ["<bos>", "Hi", " there"], thumbs: thumbs(3, 2, 3), pattern: layerPattern(0, 2, 3) });
    expect(root.dataset.busy).toBe("false");
    expect(allByTestId(host, "lw-token").map((t) => t.textContent)).toEqual(["<bos>", "Hi", "·there"]);
    expect(byTestId(host, "lw-attn-canvas").dataset.rows).toBe("3");
  });

  test("prompt is disabled when the widget has no model", () => {
    const { host } = setup({ editable: false });
    expect(byTestId<HTMLTextAreaElement>(host, "lw-prompt").disabled).toBe(true);
  });

  test("hovering the big canvas shows head, tokens and value", () => {
    const { host, canvas } = setup();
    mouse("mousemove", canvas, ...centre(canvas, 2, 1));
    const lines = [...byTestId(host, "lw-tooltip").children].map((c) => c.textContent);
    expect(lines[0]).toBe("L0H0");
    expect(lines[1]).toBe("·world[2] → Hello[1]");
    // row 2 of L0H0: hot = 2 % 3 = 2 -> weight on token 1 is 0.25 / 2, uint8-rounded
    expect(Number(lines[2])).toBeCloseTo(0.125, 2);
  });

  test("hovering a token highlights attention from and to it", () => {
    const { host, canvas } = setup();
    const tok = allByTestId(host, "lw-token")[2]!;
    mouse("mouseover", tok);
    expect(canvas.dataset.highlight).toBe("2");
    expect(allByTestId(host, "lw-dest-label")[2]!.classList.contains("lw-hl")).toBe(true);
    expect(allByTestId(host, "lw-token")[1]!.style.backgroundColor).not.toBe("");
    mouse("mouseout", tok);
    expect(canvas.dataset.highlight).toBe("");
    mouse("mouseover", allByTestId(host, "lw-src-label")[3]!);
    expect(canvas.dataset.highlight).toBe("3");
  });

  test("long prompts preview other layers from pooled thumbnails", () => {
    const n = 8;
    const { host, canvas } = setup({ tokens: Array.from({ length: n }, (_, i) => `t${i}`), thumbs: thumbs(3, 2, 4), pattern: layerPattern(0, 2, n) });
    expect(canvas.dataset.resolution).toBe("full");
    mouse("mouseover", thumb(host, 1, 0));
    expect(canvas.dataset.resolution).toBe("thumbnail");
    expect(canvas.dataset.rows).toBe(String(n));
  });

  test("full resolution follows the layer the kernel tagged the pattern with", () => {
    const n = 8;
    const { model, host, canvas } = setup({ tokens: Array.from({ length: n }, (_, i) => `t${i}`), thumbs: thumbs(3, 2, 4), pattern: layerPattern(0, 2, n) });
    thumb(host, 1, 0).click();
    expect(canvas.dataset.layer).toBe("1");
    expect(canvas.dataset.resolution).toBe("thumbnail"); // layer 1's full pattern not here yet
    model.answer({ pattern: layerPattern(1, 2, n) });
    expect(canvas.dataset.resolution).toBe("full");
    expect(canvas.dataset.mode).toBe("locked");
  });

  test("head_names label the heads (CircuitsVis-style tensor input)", () => {
    const { host } = setup({ layers: [0], heads: [0, 1], head_names: ["L23H1", "L22H7"], thumbs: thumbs(1, 2, 4) });
    expect(thumb(host, 0, 1).title).toBe("L22H7");
    expect(byTestId(host, "lw-head-label").textContent).toBe("L23H1");
  });

  test("malformed tensors show an error instead of throwing", () => {
    const { host } = setup({ pattern: { buffer: new Uint8Array(3), shape: [2, 4, 4], dtype: "uint8" } });
    expect(byTestId(host, "lw-error").hidden).toBe(false);
    expect(byTestId(host, "lw-error-text").textContent).toMatch(/pattern/);
  });

  test("one atlas canvas for every head; a kernel update repaints only the heads that changed", () => {
    const stub = installCanvasStub();
    try {
      const { host, model } = setup();
      const atlas = byTestId<HTMLCanvasElement>(host, "lw-thumb-atlas");
      expect(host.querySelectorAll("canvas")).toHaveLength(4); // atlas, pattern + its overlay, legend
      expect([atlas.dataset.rows, atlas.dataset.cols]).toEqual(["3", "2"]);
      expect(allByTestId(host, "lw-thumb").every((c) => c.tagName === "DIV")).toBe(true);
      const puts = () => stub.calls.filter((c) => c.op === "putImageData").length;
      expect(atlas.dataset.repainted).toBe("6");
      const before = puts();
      const cells = allByTestId(host, "lw-thumb");
      model.kernelUpdate({ thumbs: thumbs(3, 2, 4), revision: 1 }); // same bytes
      expect(atlas.dataset.repainted).toBe("0");
      const changed = thumbs(3, 2, 4);
      (changed.buffer as DataView).setUint8(16 * 3 + 5, 200); // layer 1, head 1
      model.kernelUpdate({ thumbs: changed, revision: 2 });
      expect(atlas.dataset.repainted).toBe("1");
      expect(puts() - before).toBe(1);
      expect(allByTestId(host, "lw-thumb")).toEqual(cells); // the cells were not rebuilt
    } finally {
      stub.restore();
    }
  });

  test("dark theme keeps the colours of values (one colour table for both themes)", () => {
    const host = document.createElement("div");
    document.body.append(host);
    const model = setup().model;
    const light = new AttentionView(model, host);
    document.body.dataset.jpThemeLight = "false";
    const dark = new AttentionView(model, document.body.appendChild(document.createElement("div")));
    expect(dark.frame.root.dataset.theme).toBe("dark");
    expect(light.frame.root.dataset.theme).toBe("light");
    expect([...dark.pattern.image!.table]).toEqual([...light.pattern.image!.table]);
    expect(dark.pattern.image!.scale.color(0.5)).toBe(light.pattern.image!.scale.color(0.5));
  });

  test("cleanup removes listeners, timers and DOM", () => {
    vi.useFakeTimers();
    const { model, host, cleanup } = setup();
    const box = byTestId<HTMLTextAreaElement>(host, "lw-prompt");
    box.value = "pending";
    box.dispatchEvent(new Event("input"));
    cleanup();
    vi.advanceTimersByTime(1000);
    expect(model.saves).toHaveLength(0);
    expect(model.listenerCount()).toBe(0);
    expect(host.children).toHaveLength(0);
  });
});
