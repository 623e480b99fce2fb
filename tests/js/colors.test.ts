import { describe, expect, test } from "vitest";
import { divergingScale, sequentialScale } from "../../src/shared/colors";
import { parseColor } from "../../src/shared/theme";

describe("colour scales", () => {
  test("diverging is centred at 0: white-ish middle, red negative, blue positive (light)", () => {
    const s = divergingScale(2, false);
    expect([s.min, s.max]).toEqual([-2, 2]);
    const [r0, g0, b0] = s.rgba(0);
    expect(Math.min(r0, g0, b0)).toBeGreaterThan(230);
    const [rn, , bn] = s.rgba(-2);
    const [rp, , bp] = s.rgba(2);
    expect(rn).toBeGreaterThan(bn);
    expect(bp).toBeGreaterThan(rp);
    expect(s.position(-5)).toBe(0); // clamped
  });

  test("dark diverging recedes to the background at 0", () => {
    const s = divergingScale(1, true, "#111111");
    const [r, g, b] = s.rgba(0);
    expect(Math.max(r, g, b)).toBeLessThan(40);
  });

  test("sequential goes light -> dark in light themes and dark -> light in dark themes", () => {
    const lum = (c: string) => parseColor(c)!.reduce((a, b) => a + b, 0);
    const light = sequentialScale(false);
    expect(lum(light.color(0))).toBeGreaterThan(lum(light.color(1)));
    const dark = sequentialScale(true);
    expect(lum(dark.color(0))).toBeLessThan(lum(dark.color(1)));
  });

  test("NaN gets a translucent neutral colour", () => {
    expect(sequentialScale(false).rgba(NaN)[3]).toBeLessThan(255);
    expect(divergingScale(1, false).color(NaN)).toMatch(/^rgba\(/);
  });
});
