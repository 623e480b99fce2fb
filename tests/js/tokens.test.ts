import { describe, expect, test } from "vitest";
import { figureSvg } from "../../src/shared/figure";
import { sequentialScale } from "../../src/shared/colors";
import { readTheme } from "../../src/shared/theme";
import { tokenStrip, visibleToken } from "../../src/shared/tokens";

const XSS = `<img src=x onerror="globalThis.__pwned=1">`;

describe("token strip", () => {
  test("whitespace is visible", () => {
    expect(visibleToken(" the")).toBe("·the");
    expect(visibleToken("\n\n")).toBe("⏎⏎");
    expect(visibleToken("\t")).toBe("→");
    expect(visibleToken("")).toBe("∅");
  });

  test("tokens are text, never HTML", () => {
    const strip = tokenStrip(["<b>", XSS, " x"]);
    document.body.append(strip);
    expect(strip.querySelector("img")).toBeNull();
    expect(strip.querySelector("b")).toBeNull();
    const spans = strip.querySelectorAll('[data-testid="lw-token"]');
    expect(spans).toHaveLength(3);
    expect(spans[1]!.textContent).toBe(visibleToken(XSS));
    expect(spans[1]!.getAttribute("data-index")).toBe("1");
    expect((globalThis as Record<string, unknown>).__pwned).toBeUndefined();
    strip.remove();
  });
});

describe("SVG export", () => {
  test("escapes labels and titles", () => {
    const svg = figureSvg({
      title: `</text><script>alert(1)</script>`,
      rows: 1,
      cols: 2,
      values: [0.1, 0.9],
      rowLabels: [XSS],
      colLabels: ["a&b", `"q'`],
      scale: sequentialScale(false),
      cell: 10,
      theme: readTheme(),
    });
    expect(svg).not.toContain("<script>");
    expect(svg).not.toContain("<img");
    expect(svg).toContain("&lt;img src=x onerror=&quot;");
    expect(svg).toContain("a&amp;b");
    const doc = new DOMParser().parseFromString(svg, "image/svg+xml");
    expect(doc.querySelectorAll("script")).toHaveLength(0);
    expect(doc.querySelectorAll("rect").length).toBeGreaterThanOrEqual(2);
  });
});
