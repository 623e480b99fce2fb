/**
 * The attention inspector at scale: byte codes (no Float32 copies), the head atlas and
 * its keyboard, zoom / pan with virtualised labels, view options, the token strip.
 */
import { afterEach, describe, expect, test } from "vitest";
import { NAN_PACKED, patternScale } from "../../src/shared/colors";
import { codeTable, headScale, maxCode } from "../../src/shared/codeColors";
import { decodeCodes } from "../../src/shared/codes";
import { binsOf, rasterWindow } from "../../src/shared/raster";
import { AttentionView } from "../../src/attention/view";
import { installCanvasStub } from "./canvasStub";
import { allByTestId, byTestId, f32Payload, FakeModel, mouse } from "./fakeModel";

/** uint8 codes of a causal pattern: row i puts 0.5 on the sink, the rest spread evenly; head h adds a stripe at i - h. */
function codesOf(layers: number, heads: number, n: number): Uint8Array {
  const out = new Uint8Array(layers * heads * n * n);
  let k = 0;
  for (let l = 0; l < layers; l++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < n; i++)
        for (let j = 0; j < n; j++, k++) out[k] = j > i ? 0 : j === 0 ? 128 : j === Math.max(1, i - h - l) ? 100 : 3;
  return out;
}

function payload(codes: Uint8Array, shape: number[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { buffer: new DataView(codes.buffer), shape, dtype: "uint8", scale: 1 / 255, offset: 0, ...extra };
}

function make(n: number, layers = 3, heads = 2, extra: Record<string, unknown> = {}) {
  const t = Math.min(n, 8);
  const edges = n <= 8 ? null : [0, 1, ...Array.from({ length: 7 }, (_, b) => 1 + Math.round(((b + 1) * (n - 1)) / 7))];
  const thumbCodes = codesOf(layers, heads, t);
  const patternCodes = codesOf(1, heads, n);
  const model = new FakeModel({
    layers: Array.from({ length: layers }, (_, l) => l),
    heads: Array.from({ length: heads }, (_, h) => h),
    head_names: [],
    layer: 0,
    head: null,
    prompt: "",
    tokens: Array.from({ length: n }, (_, i) => (i === 0 ? "<bos>" : ` t${i}`)),
    editable: true,
    debounce_ms: 0,
    thumbs: payload(thumbCodes, [layers, heads, t, t], edges ? { edges } : {}),
    pattern: { ...payload(patternCodes, [heads, n, n]), layer: 0 },
    normalize: "global",
    hide_sink: false,
    gamma: 1,
    note: "",
    ...extra,
  });
  const host = document.createElement("div");
  document.body.append(host);
  const view = new AttentionView(model, host);
  const canvas = byTestId<HTMLCanvasElement>(host, "lw-attn-canvas");
  return { model, host, view, canvas, thumbCodes, patternCodes };
}

afterEach(() => document.body.replaceChildren());

describe("memory: byte codes, no Float32 copies", () => {
  test("uint8 payloads are kept as views on the received buffers", () => {
    const { view, host, thumbCodes, patternCodes } = make(40);
    const root = byTestId(host, "lw-root");
    expect(Number(root.dataset.patternBytes)).toBe(thumbCodes.byteLength + patternCodes.byteLength);
    expect(root.dataset.payloadBytes).toBe(root.dataset.patternBytes);
    const s = view.state();
    expect(s.thumbs.codes.buffer).toBe(thumbCodes.buffer);
    expect(s.pattern.codes.buffer).toBe(patternCodes.buffer);
    // hover reads values from the codes (head 0 of layer 0: the stripe of row 5 is at column 5)
    expect(view.pattern.value({ row: 5, col: 5 })).toBeCloseTo(100 / 255, 6);
    expect(view.pattern.value({ row: 5, col: 0 })).toBeCloseTo(128 / 255, 6);
  });

  test("float payloads become codes over their range; exact values stay readable", () => {
    const vals = [0, 2, -1, 0.5];
    const c = decodeCodes({ ...f32Payload(vals, [2, 2]), edges: [0, 1, 2] });
    expect([c.lo, c.lo + 255 * c.step]).toEqual([-1, 2]);
    expect([...c.codes]).toEqual([85, 255, 0, 128]);
    expect([0, 1, 2, 3].map((i) => c.exact(i))).toEqual(vals);
    expect(c.edges).toEqual([0, 1, 2]);
  });
});

describe("raster", () => {
  const table = codeTable(patternScale(), 0, 1 / 255);
  test("zoomed out, a pixel takes the largest code it covers (thin stripes survive); the sink can be hidden", () => {
    const n = 8;
    const codes = new Uint8Array(n * n);
    for (let i = 0; i < n; i++) codes[i * n + 3] = 255; // one-column stripe at 3
    for (let i = 0; i < n; i++) codes[i * n] = 200; // sink column
    const out = new Uint32Array(4 * 4);
    const src = { n, side: n, codes, offset: 0, bins: null, table, hideSink: false };
    rasterWindow(src, { width: 4, height: 4, cellPx: 0.5, x0: 0, y0: 0 }, out);
    expect(out[1]).toBe(table[255]); // pixel 1 covers columns 2-3
    expect(out[0]).toBe(table[200]);
    rasterWindow({ ...src, hideSink: true }, { width: 4, height: 4, cellPx: 0.5, x0: 0, y0: 0 }, out);
    expect(out[0]).toBe(table[0]); // column 1 only, sink left out
    const full = new Uint32Array(64);
    rasterWindow({ ...src, hideSink: true }, { width: 8, height: 8, cellPx: 1, x0: 0, y0: 0 }, full);
    expect(full[0]).toBe(NAN_PACKED);
    expect(full[3]).toBe(table[255]);
  });

  test("zoomed in, a window of the pattern with an offset", () => {
    const n = 4;
    const codes = Uint8Array.from({ length: 16 }, (_, i) => i * 10);
    const out = new Uint32Array(4 * 4);
    // 2 px per cell, window starting at cell (1, 1)
    rasterWindow({ n, side: n, codes, offset: 0, bins: null, table, hideSink: false }, { width: 4, height: 4, cellPx: 2, x0: 2, y0: 2 }, out);
    expect(out[0]).toBe(table[50]); // cell (1, 1)
    expect(out[3]).toBe(table[60]); // cell (1, 2)
    expect(out[15]).toBe(table[100]); // cell (2, 2)
  });

  test("thumbnail bins map positions back to pooled cells", () => {
    expect([...binsOf([0, 1, 4, 7], 7, 3)!]).toEqual([0, 1, 1, 1, 2, 2, 2]);
    expect(binsOf(null, 4, 4)).toBeNull();
  });
});

describe("zoom, pan and virtualised labels", () => {
  test("1,000 tokens: fit view without labels; zooming shows only the visible labels; hover maps through the offset", () => {
    const stub = installCanvasStub();
    try {
      const n = 1000;
      const { host, view, canvas } = make(n, 2, 2);
      expect(Number(canvas.dataset.cellWidth)).toBeCloseTo(0.56, 5);
      expect(canvas.style.width).toBe("560px");
      expect(allByTestId(host, "lw-dest-label")).toHaveLength(0);
      for (let i = 0; i < 5; i++) byTestId(host, "lw-zoom-in").click(); // x32
      expect(canvas.dataset.zoom).toBe("32");
      const w = Number(canvas.dataset.cellWidth);
      const labels = allByTestId(host, "lw-dest-label");
      expect(labels.length).toBeGreaterThan(0);
      expect(labels.length).toBeLessThanOrEqual(Math.ceil(560 / w) + 1);
      expect(allByTestId(host, "lw-src-label").length).toBe(labels.length);
      // zoomed about the centre: the first visible label is around position 500 - half a window
      const first = Number(labels[0]!.dataset.index);
      expect(first).toBeGreaterThan(400);
      // hover at the viewport's top-left goes to the first visible cell
      const ox = Number(canvas.dataset.offsetX);
      const oy = Number(canvas.dataset.offsetY);
      const row = Math.floor(oy / w);
      const col = Math.floor(ox / w);
      mouse("mousemove", canvas, (col + 0.5) * w - ox, (row + 0.5) * w - oy);
      const lines = [...byTestId(host, "lw-tooltip").children].map((c) => c.textContent);
      expect(lines[1]).toBe(`·t${row}[${row}] → ·t${col}[${col}]`);
      expect(view.pattern.hover).toEqual({ row, col });
      // keyboard pan, then fit
      canvas.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowRight", bubbles: true }));
      expect(Number(canvas.dataset.offsetX)).toBeGreaterThan(ox);
      byTestId(host, "lw-zoom-fit").click();
      expect([canvas.dataset.zoom, canvas.dataset.offsetX, canvas.dataset.offsetY]).toEqual(["1", "0", "0"]);
      expect(allByTestId(host, "lw-dest-label")).toHaveLength(0);
    } finally {
      stub.restore();
    }
  });

  test("hover repaints only the cells it leaves and enters, on the overlay", () => {
    const stub = installCanvasStub();
    try {
      const { canvas } = make(40);
      const w = Number(canvas.dataset.cellWidth);
      const count = (op: string) => stub.calls.filter((c) => c.op === op).length;
      const puts = count("putImageData");
      mouse("mousemove", canvas, 2.5 * w, 3.5 * w);
      mouse("mousemove", canvas, 4.5 * w, 3.5 * w);
      expect(count("putImageData")).toBe(puts); // the pattern pixels are untouched
      const clears = stub.calls.filter((c) => c.op === "clearRect").slice(-2);
      for (const c of clears) expect((c.args[2] as number) * (c.args[3] as number)).toBeLessThanOrEqual((w + 4) ** 2);
    } finally {
      stub.restore();
    }
  });
});

describe("view options", () => {
  test("per-head scale, hidden sink and gamma change the colour table, not the codes", () => {
    const { model, view, host } = make(20);
    const legend = byTestId(host, "lw-legend");
    expect(legend.dataset.max).toBe("1");
    const codes = view.state().pattern.codes;
    model.kernelUpdate({ normalize: "head" });
    // head 0's largest code is the sink's 128
    expect(Number(legend.dataset.max)).toBeCloseTo(128 / 255, 6);
    model.kernelUpdate({ hide_sink: true });
    expect(Number(legend.dataset.max)).toBeCloseTo(100 / 255, 6); // the stripe, sink left out
    model.kernelUpdate({ gamma: 0.5 });
    expect(view.pattern.image!.scale.gamma).toBe(0.5);
    expect(view.pattern.image!.hideSink).toBe(true);
    expect(view.state().pattern.codes).toBe(codes);
  });

  test("the option controls write the traits", () => {
    const { model, host } = make(10);
    const perHead = byTestId<HTMLInputElement>(host, "lw-opt-per-head");
    perHead.checked = true;
    perHead.dispatchEvent(new Event("change"));
    const sink = byTestId<HTMLInputElement>(host, "lw-opt-hide-sink");
    sink.checked = true;
    sink.dispatchEvent(new Event("change"));
    const gamma = byTestId<HTMLSelectElement>(host, "lw-opt-gamma");
    gamma.value = "0.5";
    gamma.dispatchEvent(new Event("change"));
    expect(model.saves).toEqual([{ normalize: "head" }, { hide_sink: true }, { gamma: 0.5 }]);
  });

  test("head scale helpers", () => {
    const t = decodeCodes(payload(Uint8Array.from([200, 10, 0, 50]), [2, 2]));
    expect(maxCode(t.codes, 0, 2, false)).toBe(200);
    expect(maxCode(t.codes, 0, 2, true)).toBe(50);
    expect(headScale(t, { normalize: "head", hideSink: true, gamma: 1 }, 50).max).toBeCloseTo(50 / 255);
    expect(headScale(t, { normalize: "global", hideSink: true, gamma: 1 }, 50).max).toBeCloseTo(1);
  });
});

describe("atlas keyboard and layout", () => {
  test("arrow keys move the active head (aria-activedescendant), Enter locks, Escape unlocks", () => {
    const { model, host, canvas } = make(6);
    const atlas = host.querySelector<HTMLElement>('[role="grid"]')!;
    expect(atlas.tabIndex).toBe(0);
    atlas.dispatchEvent(new FocusEvent("focus"));
    const key = (k: string) => atlas.dispatchEvent(new KeyboardEvent("keydown", { key: k, bubbles: true }));
    key("ArrowDown");
    key("ArrowRight");
    const active = document.getElementById(atlas.getAttribute("aria-activedescendant")!)!;
    expect([active.dataset.layer, active.dataset.head]).toEqual(["1", "1"]);
    expect(active.getAttribute("role")).toBe("gridcell");
    expect(canvas.dataset.mode).toBe("preview"); // the keyboard previews like the mouse
    key("Enter");
    expect(model.saves.at(-1)).toEqual({ layer: 1, head: 1 });
    expect(active.dataset.locked).toBe("true");
    expect(active.getAttribute("aria-selected")).toBe("true");
    key("Escape");
    expect(model.saves.at(-1)).toEqual({ head: null });
    atlas.dispatchEvent(new FocusEvent("blur"));
    expect(canvas.dataset.mode).toBe("default");
  });

  test("a layer chosen elsewhere (e.g. a linked heatmap) scrolls the atlas to its row", () => {
    const { model, host } = make(6, 24, 2);
    const grid = byTestId(host, "lw-thumb-grid");
    Object.defineProperty(grid, "clientHeight", { value: 200, configurable: true });
    expect(grid.scrollTop).toBe(0);
    model.kernelUpdate({ layer: 23, head: 1 });
    const pitch = Number(byTestId(host, "lw-thumb-atlas").dataset.cellHeight);
    expect(grid.scrollTop).toBeGreaterThan(23 * pitch - 200);
    expect(grid.scrollTop).toBeLessThanOrEqual(23 * pitch);
  });
});

describe("token strip", () => {
  test("click pins the highlight, arrow keys move it, Escape clears; edits update in place", () => {
    const { host, canvas, model } = make(6);
    const strip = byTestId(host, "lw-token-strip");
    const tokens = allByTestId(host, "lw-token");
    tokens[3]!.click();
    expect(canvas.dataset.highlight).toBe("3");
    mouse("mouseover", tokens[1]!);
    expect(canvas.dataset.highlight).toBe("1");
    mouse("mouseout", tokens[1]!);
    expect(canvas.dataset.highlight).toBe("3"); // back to the pinned one
    strip.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowRight" }));
    expect(canvas.dataset.highlight).toBe("4");
    expect(document.getElementById(strip.getAttribute("aria-activedescendant")!)).toBe(tokens[4]);
    strip.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape" }));
    expect(canvas.dataset.highlight).toBe("");
    // a prompt edit that appends tokens keeps the existing spans
    const n = 7;
    const codes = codesOf(1, 2, n);
    model.kernelUpdate({
      tokens: [...Array.from({ length: 6 }, (_, i) => (i === 0 ? "<bos>" : ` t${i}`)), " new"],
      thumbs: payload(codesOf(3, 2, n), [3, 2, n, n]),
      pattern: { ...payload(codes, [2, n, n]), layer: 0 },
    });
    const after = allByTestId(host, "lw-token");
    expect(after).toHaveLength(7);
    expect(after.slice(0, 6)).toEqual(tokens);
    expect(after[6]!.textContent).toBe("·new");
  });
});

describe("big layers travel head by head", () => {
  test("only the heads the kernel sent are full resolution; the others preview from thumbnails", () => {
    const n = 40;
    const one = codesOf(1, 1, n);
    const { canvas, host, model } = make(n, 3, 2, { pattern: { ...payload(one, [1, n, n]), layer: 0, heads: [1] }, head: 1 });
    expect([canvas.dataset.head, canvas.dataset.resolution]).toEqual(["1", "full"]);
    mouse("mouseover", host.querySelector('[data-testid="lw-thumb"][data-layer="0"][data-head="0"]')!);
    expect([canvas.dataset.head, canvas.dataset.resolution]).toEqual(["0", "thumbnail"]);
    mouse("mouseleave", byTestId(host, "lw-thumb-grid"));
    model.kernelUpdate({ head: null, pattern: { ...payload(one, [1, n, n]), layer: 0, heads: [0] } });
    expect([canvas.dataset.head, canvas.dataset.resolution, canvas.dataset.mode]).toEqual(["0", "full", "default"]);
  });
});
