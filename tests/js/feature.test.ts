import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { activationStrip } from "../../src/shared/activations";
import { render } from "../../src/feature/view";
import type { Callback } from "../../src/shared/types";
import { allByTestId, byTestId, f32Payload, FakeModel } from "./fakeModel";

const XSS = `<img src=x onerror="globalThis.__pwned=1">`;

/** A FakeModel that can deliver kernel -> browser custom messages (`msg:custom`). */
class CustomModel extends FakeModel {
  private custom: Callback[] = [];
  override on(event: string, cb: Callback): void {
    if (event === "msg:custom") this.custom.push(cb);
    else super.on(event, cb);
  }
  override off(event?: string | null, cb?: Callback | null): void {
    if (event === "msg:custom") this.custom = this.custom.filter((c) => c !== cb);
    else super.off(event, cb);
  }
  deliver(msg: unknown): void {
    for (const cb of this.custom) cb(msg, []);
  }
}

const DONE = {
  status: "done",
  progress: [6, 6],
  summary: { fired: 5, total: 40, frequency: 0.125, mean: 1.5, max: 3 },
  histogram: { counts: f32Payload([1, 0, 4], [3]), edges: f32Payload([0.1, 0.2, 0.5, 1], [4]) },
  contexts: [
    { value: 3, doc: 2, start: 4, tokens: [" the", XSS, " sat"], acts: f32Payload([0, 3, 0.5], [3]), top: 1, clipped_left: true, clipped_right: false },
    { value: 1.5, doc: 0, start: 0, tokens: ["A", " dog"], acts: f32Payload([1.5, 0], [2]), top: 0, clipped_left: false, clipped_right: true },
  ],
};

function setup(extra: Record<string, unknown> = {}) {
  const model = new CustomModel({
    hook: "blocks.1.hook_resid_post",
    sae_label: "L1 resid_post",
    d_sae: 64,
    n_windows: 6,
    n_docs: 3,
    ctx_len: 16,
    top_k: 10,
    idx: 7,
    status: "pending",
    progress: [0, 6],
    summary: {},
    histogram: {},
    contexts: [],
    effects: { promoted: [" on", XSS], promoted_values: f32Payload([2, 1], [2]), suppressed: [" of"], suppressed_values: f32Payload([-1], [1]) },
    ...extra,
  });
  const host = document.createElement("div");
  document.body.append(host);
  const cleanup = render({ model, el: host });
  return { model, host, cleanup };
}

beforeEach(() => document.body.replaceChildren());
afterEach(() => {
  document.body.replaceChildren();
  expect((globalThis as { __pwned?: number }).__pwned).toBeUndefined();
});

describe("feature dashboard", () => {
  test("asks the kernel to scan once, shows progress messages, then the results", () => {
    const { model, host } = setup();
    expect(model.sent).toEqual([{ type: "compute" }]);
    const root = byTestId(host, "lw-root");
    expect(root.dataset.widget).toBe("feature");
    const progress = byTestId(host, "lw-feat-progress");
    expect(progress.hidden).toBe(false);
    expect(byTestId(host, "lw-feat-results").hidden).toBe(true);
    model.kernelUpdate({ status: "running" });
    model.deliver({ type: "progress", done: 2, total: 6 });
    expect(progress.dataset.done).toBe("2");
    expect(byTestId<HTMLProgressElement>(host, "lw-feat-progress-bar").value).toBe(2);
    expect(byTestId(host, "lw-feat-progress-text").textContent).toBe("scanning the corpus: 2/6 windows");
    model.deliver({ type: "other" }); // ignored
    model.kernelUpdate(DONE);
    expect(progress.hidden).toBe(true);
    expect(byTestId(host, "lw-feat-results").hidden).toBe(false);
    expect(root.dataset.status).toBe("done");
    expect(model.sent).toHaveLength(1); // a re-render does not ask again
  });

  test("contexts: one strip per context, tokens as text coloured by activation, the top token outlined", () => {
    const { host } = setup(DONE);
    const rows = allByTestId(host, "lw-feat-context");
    expect(rows.map((r) => r.dataset.value)).toEqual(["3", "1.5"]);
    expect(rows.map((r) => r.dataset.doc)).toEqual(["2", "0"]);
    const tokens = allByTestId(rows[0]!, "lw-token");
    expect(tokens.map((t) => t.textContent)).toEqual(["·the", XSS.replace(/ /g, "·"), "·sat"]);
    expect(tokens.map((t) => t.dataset.act)).toEqual(["0", "3", "0.5"]);
    expect(tokens[1]!.classList.contains("lw-hl")).toBe(true);
    expect(tokens[0]!.style.backgroundColor).toBe(""); // zero activation: not coloured
    expect(tokens[1]!.style.backgroundColor).not.toBe("");
    expect(rows[0]!.querySelectorAll("img").length).toBe(0);
    expect(byTestId(rows[0]!, "lw-feat-context-value").textContent).toBe("3.000");
    expect(byTestId(host, "lw-feat-summary").textContent).toBe("fires on 12.50% of 40 tokens (5) · max 3.000 · mean when firing 1.500");
  });

  test("histogram bars carry their bin and count; effects list the promoted / suppressed tokens", () => {
    const { host } = setup(DONE);
    const bars = allByTestId(host, "lw-feat-hist-bar");
    expect(bars.map((b) => b.dataset.count)).toEqual(["1", "0", "4"]);
    expect(bars.map((b) => Number(b.dataset.lo))).toEqual([expect.closeTo(0.1, 6), expect.closeTo(0.2, 6), expect.closeTo(0.5, 6)]);
    expect(bars[2]!.style.height).toBe("80px");
    expect(bars[1]!.style.height).toBe("0px");
    expect(byTestId(host, "lw-feat-hist-max").textContent).toBe("1.000");
    const promoted = allByTestId(byTestId(host, "lw-feat-promoted"), "lw-feat-effect-token");
    expect(promoted.map((p) => p.dataset.token)).toEqual([" on", XSS]);
    expect(promoted.map((p) => p.dataset.value)).toEqual(["2", "1"]);
    expect(allByTestId(byTestId(host, "lw-feat-suppressed"), "lw-feat-effect-token").map((p) => p.dataset.value)).toEqual(["-1"]);
  });

  test("the feature picker sets idx (next/previous wrap around); junk puts the index back", () => {
    const { model, host } = setup(DONE);
    const input = byTestId<HTMLInputElement>(host, "lw-feat-idx");
    expect(input.value).toBe("7");
    expect(input.max).toBe("63");
    input.value = "12";
    input.dispatchEvent(new Event("change"));
    expect(model.saves.at(-1)).toEqual({ idx: 12 });
    expect(byTestId(host, "lw-root").dataset.busy).toBe("true");
    model.kernelUpdate({ idx: 0, revision: 1 });
    byTestId(host, "lw-feat-prev").click();
    expect(model.saves.at(-1)).toEqual({ idx: 63 });
    model.kernelUpdate({ idx: 63, revision: 2 });
    byTestId(host, "lw-feat-next").click();
    expect(model.saves.at(-1)).toEqual({ idx: 0 });
    const n = model.saves.length;
    input.value = "abc";
    input.dispatchEvent(new Event("change"));
    expect(model.saves.length).toBe(n);
    expect(input.value).toBe("0"); // the index last set
  });

  test("a malformed tensor is reported in the banner, not thrown", () => {
    const { host } = setup({ ...DONE, histogram: { counts: { buffer: new DataView(new ArrayBuffer(3)), shape: [3], dtype: "float32" }, edges: f32Payload([1, 2, 3, 4], [4]) } });
    expect(byTestId(host, "lw-error-text").textContent).toContain("Could not decode");
  });

  test("dispose removes every listener", () => {
    const { model, cleanup } = setup(DONE);
    cleanup();
    expect(model.listenerCount()).toBe(0);
  });
});

describe("activation strip", () => {
  test("values under the tokens when asked; NaN and zero are not coloured", () => {
    const strip = activationStrip(["a", "b", "c"], new Float32Array([0, 2, NaN]), { values: true, highlight: 1, clippedLeft: true });
    const toks = allByTestId(strip, "lw-token");
    expect(allByTestId(strip, "lw-act-value").map((v) => v.textContent)).toEqual(["0", "2.000", "0"]);
    expect(toks[1]!.classList.contains("lw-hl")).toBe(true);
    expect(toks[2]!.style.backgroundColor).toBe("");
    expect(strip.firstElementChild!.textContent).toBe("…");
  });
});
