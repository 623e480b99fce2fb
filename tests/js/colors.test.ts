import { interpolateBlues, interpolateRdBu } from "d3-scale-chromatic";
import { describe, expect, test } from "vitest";
import { divergingScale, makeScale, patternScale, sequentialScale } from "../../src/shared/colors";
import { DIVERGING, rampTable, SEQUENTIAL, type Ramp } from "../../src/shared/palettes";
import { parseColor } from "../../src/shared/theme";

describe("colour scales", () => {
  test("diverging is centred at 0: white-ish middle, red negative, blue positive", () => {
    const s = divergingScale(2);
    expect([s.min, s.max]).toEqual([-2, 2]);
    const [r0, g0, b0] = s.rgba(0);
    expect(Math.min(r0, g0, b0)).toBeGreaterThan(230);
    const [rn, , bn] = s.rgba(-2);
    const [rp, , bp] = s.rgba(2);
    expect(rn).toBeGreaterThan(bn);
    expect(bp).toBeGreaterThan(rp);
    expect(s.position(-5)).toBe(0); // clamped
  });

  test("one colour meaning in both themes: the theme arguments change nothing", () => {
    for (const v of [-1, -0.3, 0, 0.2, 1]) {
      expect(divergingScale(1, true, "#111111").color(v)).toBe(divergingScale(1, false, "#ffffff").color(v));
    }
    for (const v of [0, 0.1, 0.5, 1]) expect(sequentialScale(true).color(v)).toBe(sequentialScale(false).color(v));
    expect(patternScale(true, "#000").color(0.4)).toBe(patternScale(false).color(0.4));
  });

  test("sequential goes light -> dark", () => {
    const lum = (c: string) => parseColor(c)!.reduce((a, b) => a + b, 0);
    const s = sequentialScale();
    expect(lum(s.color(0))).toBeGreaterThan(lum(s.color(0.5)));
    expect(lum(s.color(0.5))).toBeGreaterThan(lum(s.color(1)));
  });

  test("NaN gets a translucent neutral colour", () => {
    expect(sequentialScale().rgba(NaN)[3]).toBeLessThan(255);
    expect(divergingScale(1).color(NaN)).toMatch(/^rgba\(/);
    expect(sequentialScale().index(NaN)).toBe(-1);
  });

  test("gamma < 1 lifts small values; 1 is linear; the ends stay put", () => {
    const lin = makeScale("sequential", 0, 1);
    const g = makeScale("sequential", 0, 1, undefined, undefined, 0.5);
    expect(lin.position(0.25)).toBeCloseTo(0.25);
    expect(g.position(0.25)).toBeCloseTo(0.5);
    expect([g.position(0), g.position(1)]).toEqual([0, 1]);
    const d = makeScale("diverging", -1, 1, undefined, undefined, 0.5);
    expect(d.position(-0.25)).toBeCloseTo(0.5 - 0.5 * Math.sqrt(0.25));
    expect(d.position(0)).toBeCloseTo(0.5);
  });

  test("packed entries are the table's RGBA bytes as ImageData stores them", () => {
    const s = sequentialScale();
    const bytes = new Uint8ClampedArray(s.packed.buffer.slice(0));
    const t = rampTable(SEQUENTIAL);
    expect([...bytes.subarray(0, 8)]).toEqual([...t.subarray(0, 8)]);
    expect([...bytes.subarray(1020, 1024)]).toEqual([...t.subarray(1020, 1024)]);
  });
});

describe("precomputed ramps match ColorBrewer as d3-scale-chromatic interpolates it", () => {
  const cases: Array<[string, Ramp, (t: number) => string, (i: number) => number]> = [
    // the sequential table samples Blues on [0.02, 1]
    ["sequential", SEQUENTIAL, interpolateBlues, (i) => 0.02 + (0.98 * i) / 255],
    ["diverging", DIVERGING, interpolateRdBu, (i) => i / 255],
  ];
  for (const [name, ramp, reference, at] of cases) {
    test(name, () => {
      const table = rampTable(ramp);
      let worst = 0;
      for (let i = 0; i < 256; i++) {
        const want = parseColor(reference(at(i)))!;
        for (let c = 0; c < 3; c++) worst = Math.max(worst, Math.abs(table[4 * i + c]! - want[c]!));
        expect(table[4 * i + 3]).toBe(255);
      }
      expect(worst).toBeLessThanOrEqual(1); // rounding only
    });
  }
});
