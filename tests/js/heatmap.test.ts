import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { render } from "../../src/heatmap/view";
import { installCanvasStub, installDownloadStub } from "./canvasStub";
import { allByTestId, byTestId, centre, f32Payload, FakeModel, mouse } from "./fakeModel";

// 3 layers x 2 heads
const VALUES = [0.5, -1.25, 0, 2, NaN, -0.001];

function setup(extra: Record<string, unknown> = {}) {
  const model = new FakeModel({
    values: f32Payload(VALUES, [3, 2]),
    labels: ["L0H0", "L0H1", "L1H0", "L1H1", "L2H0", "L2H1"],
    row_labels: ["L0", "L1", "L2"],
    col_labels: ["H0", "H1"],
    scale: "diverging",
    vmin: -2,
    vmax: 2,
    cell_size: 20,
    selected: null,
    ...extra,
  });
  const host = document.createElement("div");
  document.body.append(host);
  const cleanup = render({ model, el: host });
  const canvas = byTestId<HTMLCanvasElement>(host, "lw-heatmap-canvas");
  return { model, host, cleanup, canvas };
}

afterEach(() => {
  document.body.replaceChildren();
  delete document.body.dataset.jpThemeLight;
});

describe("head heatmap", () => {
  test("publishes geometry, labels and legend", () => {
    const { host, canvas } = setup();
    expect(byTestId(host, "lw-root").dataset.widget).toBe("heatmap");
    expect(canvas.dataset.rows).toBe("3");
    expect(canvas.dataset.cols).toBe("2");
    expect(canvas.dataset.cellWidth).toBe("20");
    expect(allByTestId(host, "lw-row-label").map((e) => e.textContent)).toEqual(["L0", "L1", "L2"]);
    expect(allByTestId(host, "lw-col-label").map((e) => e.textContent)).toEqual(["H0", "H1"]);
    const legend = byTestId(host, "lw-legend");
    expect(legend.dataset.scale).toBe("diverging");
    expect([legend.dataset.min, legend.dataset.max]).toEqual(["-2", "2"]);
    expect(byTestId(host, "lw-error").hidden).toBe(true);
  });

  test("hover shows L{l}H{h} and the value", () => {
    const { host, canvas } = setup();
    const tip = byTestId(host, "lw-tooltip");
    mouse("mousemove", canvas, ...centre(canvas, 1, 1));
    expect(tip.hidden).toBe(false);
    expect(tip.innerText ?? tip.textContent).toContain("L1H1");
    expect([...tip.children].map((c) => c.textContent)).toEqual(["L1H1", "2.000"]);
    expect(canvas.dataset.hover).toBe("1,1");
    mouse("mousemove", canvas, ...centre(canvas, 2, 0));
    expect([...tip.children].map((c) => c.textContent)).toEqual(["L2H0", "n/a"]);
    mouse("mouseleave", canvas);
    expect(tip.hidden).toBe(true);
  });

  test("click sets selected and saves; clicking again clears", () => {
    const { model, canvas } = setup();
    mouse("click", canvas, ...centre(canvas, 2, 1));
    expect(model.get("selected")).toEqual({ layer: 2, head: 1 });
    expect(model.saves.at(-1)).toEqual({ selected: { layer: 2, head: 1 } });
    expect(canvas.dataset.selected).toBe("2,1");
    mouse("click", canvas, ...centre(canvas, 2, 1));
    expect(model.get("selected")).toBeNull();
    expect(model.saves).toHaveLength(2);
    canvas.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape" }));
    expect(model.saves).toHaveLength(3);
  });

  test("keyboard: arrows move a cursor (tooltip + legend marker), Enter selects, Escape clears", () => {
    const { model, host, canvas } = setup();
    const key = (k: string) => canvas.dispatchEvent(new KeyboardEvent("keydown", { key: k, bubbles: true }));
    canvas.focus();
    expect(canvas.dataset.cursor).toBe("0,0");
    key("ArrowDown");
    key("ArrowRight");
    key("ArrowRight"); // clamped at the last column
    expect(canvas.dataset.cursor).toBe("1,1");
    const tip = byTestId(host, "lw-tooltip");
    expect(tip.hidden).toBe(false);
    expect([...tip.children].map((c) => c.textContent)).toEqual(["L1H1", "2.000"]);
    expect(byTestId(host, "lw-legend-value").textContent).toBe("2.000");
    key("Enter");
    expect(model.saves.at(-1)).toEqual({ selected: { layer: 1, head: 1 } });
    expect(canvas.dataset.selected).toBe("1,1");
    key("End");
    key("PageDown");
    expect(canvas.dataset.cursor).toBe("2,1");
    key(" ");
    expect(model.saves.at(-1)).toEqual({ selected: { layer: 2, head: 1 } });
    key("Escape");
    expect(model.saves.at(-1)).toEqual({ selected: null });
    expect(canvas.dataset.selected).toBe("");
  });

  test("screen readers get a grid: cells as text, the cursor as aria-activedescendant, the selection as aria-selected", () => {
    const { model, canvas } = setup();
    expect(canvas.getAttribute("role")).toBe("grid");
    const cells = allByTestId(canvas, "lw-grid-cell");
    expect(cells).toHaveLength(6);
    expect(cells.map((c) => c.textContent)).toEqual(["L0H0: 0.500", "L0H1: -1.250", "L1H0: 0.000", "L1H1: 2.000", "L2H0: n/a", "L2H1: -0.001"]);
    expect(cells.every((c) => c.getAttribute("role") === "gridcell")).toBe(true);
    canvas.focus();
    canvas.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowRight" }));
    expect(canvas.getAttribute("aria-activedescendant")).toBe(cells[1]!.id);
    model.kernelUpdate({ selected: { layer: 2, head: 0 } });
    expect(cells.filter((c) => c.getAttribute("aria-selected") === "true")).toEqual([cells[4]]);
  });

  test("the legend names the values and marks the hovered one", () => {
    const { host, canvas, model } = setup();
    expect(byTestId(host, "lw-legend-title").textContent).toBe("value");
    model.kernelUpdate({ value_label: "logit diff" });
    expect(byTestId(host, "lw-legend-title").textContent).toBe("logit diff");
    mouse("mousemove", canvas, ...centre(canvas, 0, 1));
    const marker = byTestId(host, "lw-legend-value").parentElement!;
    expect(marker.hidden).toBe(false);
    expect(marker.style.top).toBe("81.25%"); // -1.25 on [-2, 2]
    expect(byTestId(host, "lw-legend-value").textContent).toBe("-1.250");
    mouse("mouseleave", canvas);
    expect(marker.hidden).toBe(true);
  });

  test("kernel-side selection and values updates re-render", () => {
    const { model, canvas, host } = setup();
    model.kernelUpdate({ selected: { layer: 0, head: 1 } });
    expect(canvas.dataset.selected).toBe("0,1");
    model.kernelUpdate({ values: f32Payload([1, 2, 3, 4], [1, 4]), labels: [], row_labels: ["x"], col_labels: [] });
    expect(canvas.dataset.rows).toBe("1");
    expect(canvas.dataset.cols).toBe("4");
    expect(allByTestId(host, "lw-col-label").map((e) => e.textContent)).toEqual(["H0", "H1", "H2", "H3"]);
  });

  test("error banner shows the error trait as text and dismiss sends clear_error", () => {
    const { model, host } = setup({ error: "<b>bad</b> layer" });
    const banner = byTestId(host, "lw-error");
    expect(banner.hidden).toBe(false);
    expect(byTestId(host, "lw-error-text").textContent).toBe("<b>bad</b> layer");
    expect(banner.querySelector("b")).toBeNull();
    byTestId(host, "lw-error-dismiss").click();
    expect(model.sent).toEqual([{ type: "clear_error" }]);
    expect(banner.hidden).toBe(true);
    model.kernelUpdate({ error: "again" });
    expect(banner.hidden).toBe(false);
  });

  test("dark theme follows JupyterLab's body flag, also when it switches", async () => {
    document.body.dataset.jpThemeLight = "false";
    const { host } = setup();
    const root = byTestId(host, "lw-root");
    expect(root.dataset.theme).toBe("dark");
    document.body.dataset.jpThemeLight = "true";
    await vi.waitFor(() => expect(root.dataset.theme).toBe("light"));
  });

  test("draws on a canvas and exports PNG and SVG", () => {
    const stub = installCanvasStub();
    const { created, clicks, restore } = installDownloadStub();
    try {
      const { host } = setup({ title: "Logit Difference From Each Head" });
      expect(stub.calls.some((c) => c.op === "putImageData")).toBe(true);
      expect(stub.calls.some((c) => c.op === "drawImage")).toBe(true);
      byTestId(host, "lw-export-svg").click();
      expect(clicks).toContain("logit-difference-from-each-head.svg");
      expect(created[0]!.type).toBe("image/svg+xml");
      byTestId(host, "lw-export-png").click(); // happy-dom toBlob may call back async; data-URL fallback is sync
      expect(stub.calls.some((c) => c.op === "fillText")).toBe(true);
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

beforeEach(() => {
  document.body.replaceChildren();
});
