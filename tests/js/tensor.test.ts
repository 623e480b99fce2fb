import { describe, expect, test } from "vitest";
import { decodeTensor, halfToFloat, slice0 } from "../../src/shared/tensor";
import goldenJson from "./golden/codec_golden.json";

interface GoldenCase {
  name: string;
  payload: Record<string, unknown> & { buffer_b64: string };
  expected: number[];
  original: number[];
}

const golden = goldenJson as unknown as GoldenCase[];

describe("halfToFloat", () => {
  test.each([
    [0x0000, 0],
    [0x3c00, 1],
    [0xc000, -2],
    [0x7bff, 65504],
    [0x0400, 2 ** -14],
    [0x0001, 2 ** -24],
    [0x7c00, Infinity],
    [0xfc00, -Infinity],
  ])("bits %s -> %s", (bits, value) => expect(halfToFloat(bits)).toBe(value));

  test("NaN and negative zero", () => {
    expect(halfToFloat(0x7e00)).toBeNaN();
    expect(Object.is(halfToFloat(0x8000), -0)).toBe(true);
  });
});

describe("golden bytes from lenswidget/widgets/codec.py", () => {
  test.each(golden.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const bytes = Uint8Array.from(atob(c.payload.buffer_b64), (ch) => ch.charCodeAt(0));
    // The widget manager hands buffers over as DataViews into a larger ArrayBuffer.
    const padded = new Uint8Array(bytes.length + 3);
    padded.set(bytes, 3);
    const t = decodeTensor({ ...c.payload, buffer: new DataView(padded.buffer, 3, bytes.length) });
    expect(t.shape).toEqual(c.payload.shape);
    if (c.name === "uint8") c.expected.forEach((v, i) => expect(t.data[i]).toBeCloseTo(v, 6));
    else expect([...t.data]).toEqual(c.expected.map((v) => Math.fround(v)));
    if (c.name === "uint8") {
      c.original.forEach((v, i) => expect(Math.abs(t.data[i]! - v)).toBeLessThanOrEqual(1 / 510 + 1e-7));
    }
  });
});

describe("decodeTensor", () => {
  test("accepts ArrayBuffer and typed arrays", () => {
    const f = new Float32Array([1, 2, 3, 4]);
    expect([...decodeTensor({ buffer: f.buffer, shape: [2, 2], dtype: "float32" }).data]).toEqual([1, 2, 3, 4]);
    expect([...decodeTensor({ buffer: new Uint8Array([0, 255]), shape: [2], dtype: "uint8", scale: 1 / 255, offset: 0 }).data]).toEqual([0, 1]);
  });

  test("rejects malformed payloads", () => {
    expect(() => decodeTensor(null)).toThrow(TypeError);
    expect(() => decodeTensor({ buffer: new Uint8Array(3), shape: [2], dtype: "float16" })).toThrow(/needs 4/);
    expect(() => decodeTensor({ buffer: new Uint8Array(2), shape: [2], dtype: "int64" })).toThrow(/dtype/);
    expect(() => decodeTensor({ buffer: "AAAA", shape: [1], dtype: "float32" })).toThrow(/binary/);
    expect(() => decodeTensor({ buffer: new Uint8Array(2), shape: [-2], dtype: "uint8" })).toThrow(/shape/);
  });

  test("slice0 views the first axis", () => {
    const t = decodeTensor({ buffer: new Float32Array([1, 2, 3, 4, 5, 6]).buffer, shape: [3, 2], dtype: "float32" });
    const s = slice0(t, 1);
    expect(s.shape).toEqual([2]);
    expect([...s.data]).toEqual([3, 4]);
  });
});
