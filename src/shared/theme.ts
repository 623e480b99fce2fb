/**
 * Theme from JupyterLab's `--jp-*` CSS variables. Dark mode is
 * `body[data-jp-theme-light="false"]`; outside JupyterLab we fall back to the
 * luminance of `--jp-layout-color0` (and to light when nothing is set).
 */
export interface Theme {
  dark: boolean;
  background: string;
  foreground: string;
  muted: string;
  border: string;
  accent: string;
  error: string;
  font: string;
  monoFont: string;
}

function cssVar(style: CSSStyleDeclaration | null, name: string, fallback: string): string {
  const v = style?.getPropertyValue(name).trim();
  return v ? v : fallback;
}

/** Relative luminance (0..1) of a `#rgb`, `#rrggbb` or `rgb(...)` colour; null if unparsable. */
export function luminance(color: string): number | null {
  const rgb = parseColor(color);
  if (!rgb) return null;
  const [r, g, b] = rgb.map((c) => {
    const s = c / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  }) as [number, number, number];
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

export function parseColor(color: string): [number, number, number] | null {
  const c = color.trim();
  let m = /^#([0-9a-f]{3})$/i.exec(c);
  if (m) return [...m[1]!].map((h) => parseInt(h + h, 16)) as [number, number, number];
  m = /^#([0-9a-f]{6})/i.exec(c);
  if (m) return [0, 2, 4].map((i) => parseInt(m![1]!.slice(i, i + 2), 16)) as [number, number, number];
  m = /^rgba?\(\s*([\d.]+)[\s,]+([\d.]+)[\s,]+([\d.]+)/i.exec(c);
  if (m) return [Number(m[1]), Number(m[2]), Number(m[3])];
  return null;
}

/** Whether JupyterLab (or the page) is in a dark theme. */
export function isDark(node: Element = document.body): boolean {
  const flag = document.body?.dataset.jpThemeLight;
  if (flag === "false") return true;
  if (flag === "true") return false;
  const bg = resolveColor(node, "--jp-layout-color0", "#ffffff");
  const lum = luminance(bg);
  return lum !== null && lum < 0.4;
}

/**
 * The computed colour of `var(name)` under `node`, as `rgb(...)`: a probe element lets the
 * browser resolve nested `var()` references. Falls back when nothing parsable comes back.
 */
export function resolveColor(node: Element, name: string, fallback: string): string {
  const probe = document.createElement("span");
  probe.style.display = "none";
  probe.style.color = `var(${name}, ${fallback})`;
  node.append(probe);
  const computed = typeof getComputedStyle === "function" ? getComputedStyle(probe).color : "";
  probe.remove();
  if (computed && parseColor(computed)) return computed;
  const raw = typeof getComputedStyle === "function" ? getComputedStyle(node).getPropertyValue(name).trim() : "";
  return raw && parseColor(raw) ? raw : fallback;
}

export function readTheme(node: Element = document.body): Theme {
  const dark = isDark(node);
  const style = typeof getComputedStyle === "function" ? getComputedStyle(node) : null;
  return {
    dark,
    background: resolveColor(node, "--jp-layout-color0", dark ? "#111111" : "#ffffff"),
    foreground: resolveColor(node, "--jp-ui-font-color0", dark ? "#ffffff" : "#000000"),
    muted: resolveColor(node, "--jp-ui-font-color2", dark ? "#aaaaaa" : "#616161"),
    border: resolveColor(node, "--jp-border-color1", dark ? "#4a4a4a" : "#bdbdbd"),
    accent: resolveColor(node, "--jp-brand-color1", dark ? "#64b5f6" : "#1976d2"),
    error: resolveColor(node, "--jp-error-color1", dark ? "#ef5350" : "#d32f2f"),
    font: cssVar(style, "--jp-ui-font-family", "system-ui, sans-serif"),
    monoFont: cssVar(style, "--jp-code-font-family", "monospace"),
  };
}

/** Call `cb` whenever JupyterLab switches theme; returns the unsubscribe function. */
export function onThemeChange(cb: () => void): () => void {
  if (typeof MutationObserver === "undefined" || !document.body) return () => {};
  const obs = new MutationObserver(cb);
  obs.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light", "data-jp-theme-name"] });
  return () => obs.disconnect();
}
