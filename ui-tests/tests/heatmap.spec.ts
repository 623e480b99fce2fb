/**
 * Head heatmap (``lenswidget.widgets.head_heatmap``) in a real JupyterLab.
 * DOM contract: src/DOM.md.
 */
import { expect, test } from '@jupyterlab/galata';

import {
  canvasGeometry,
  canvasPixel,
  canvasPixels,
  download,
  clickCanvasCell,
  computedStyle,
  hoverCanvasCell,
  kernelValue,
  luminance,
  openNotebook,
  outputLocator,
  REPO_PATH_PRELUDE,
  runCode,
  setTheme,
  tooltipLines
} from './utils';

const XSS = '<img src=x onerror=window.__xss=1>';

// 2 layers x 3 heads with exactly representable values.
const BUILD = `${REPO_PATH_PRELUDE}
import numpy as np
import lenswidget
vals = np.array([[0.5, -0.25, 0.0], [1.0, -1.0, 0.125]], dtype=np.float32)
hm = lenswidget.widgets.head_heatmap(vals, title="Test heatmap")
hm`;

test.describe('head heatmap', () => {
  test('grid, tooltip, selection and theme', async ({ page, tmpPath }) => {
    await openNotebook(page, tmpPath, 'heatmap.ipynb');
    const { index } = await runCode(page, BUILD);
    const root = outputLocator(page, index).getByTestId('lw-root');
    const canvas = root.getByTestId('lw-heatmap-canvas');
    const tooltip = root.getByTestId('lw-tooltip');

    await test.step('renders the grid with its labels', async () => {
      await expect(root).toHaveAttribute('data-widget', 'heatmap');
      await expect(root.getByTestId('lw-title')).toHaveText('Test heatmap');
      await expect(canvas).toBeVisible();
      await expect(canvas).toHaveAttribute('data-rows', '2');
      await expect(canvas).toHaveAttribute('data-cols', '3');
      await expect(root.getByTestId('lw-row-label')).toHaveText(['L0', 'L1']);
      await expect(root.getByTestId('lw-col-label')).toHaveText([
        'H0',
        'H1',
        'H2'
      ]);
      await expect(root.getByTestId('lw-error')).toBeHidden();
      // Sanity check of the pixels: the canvas is not blank.
      expect(await canvasPixels(canvas)).not.toBe(
        await canvas.evaluate((el: Element) => {
          const c = el as HTMLCanvasElement;
          const blank = document.createElement('canvas');
          blank.width = c.width;
          blank.height = c.height;
          return blank.toDataURL();
        })
      );
      const legend = root.getByTestId('lw-legend');
      await expect(legend).toHaveAttribute('data-scale', 'diverging');
      expect(Number(await legend.getAttribute('data-min'))).toBe(-1);
      expect(Number(await legend.getAttribute('data-max'))).toBe(1);
    });

    await test.step('hover shows L{l}H{h} and the value', async () => {
      const geometry = await canvasGeometry(canvas);
      await expect(tooltip).toBeHidden();
      await hoverCanvasCell(canvas, 1, 2, geometry);
      await expect(tooltip).toBeVisible();
      await expect(canvas).toHaveAttribute('data-hover', '1,2');
      await expect.poll(() => tooltipLines(tooltip)).toEqual(['L1H2', '0.125']);

      await hoverCanvasCell(canvas, 0, 1, geometry);
      await expect.poll(() => tooltipLines(tooltip)).toEqual(['L0H1', '-0.250']);

      // Leaving the canvas hides the tooltip.
      await page.mouse.move(0, 0);
      await expect(tooltip).toBeHidden();
    });

    await test.step('click selects a head in the kernel', async () => {
      await clickCanvasCell(canvas, 1, 0);
      await expect(canvas).toHaveAttribute('data-selected', '1,0');
      await expect
        .poll(() => kernelValue(page, 'hm.selected'))
        .toEqual({ layer: 1, head: 0 });

      // Clicking the selected cell again clears the selection.
      await clickCanvasCell(canvas, 1, 0);
      await expect(canvas).toHaveAttribute('data-selected', '');
      await expect.poll(() => kernelValue(page, 'hm.selected')).toBeNull();
    });

    await test.step('kernel-side selection is shown', async () => {
      await runCode(page, 'hm.selected = {"layer": 0, "head": 2}');
      await expect(canvas).toHaveAttribute('data-selected', '0,2');
    });

    await test.step('exports PNG and SVG files', async () => {
      const png = await download(page, root.getByTestId('lw-export-png'));
      expect(png.name).toBe('test-heatmap.png');
      expect(png.bytes.subarray(0, 8)).toEqual(
        Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
      );
      const svg = await download(page, root.getByTestId('lw-export-svg'));
      expect(svg.name).toBe('test-heatmap.svg');
      expect(svg.text).toMatch(/^(<\?xml[^>]*>\s*)?<svg[\s>]/);
      expect(svg.text).toContain('Test heatmap');
    });

    await test.step('keyboard: arrows move a cursor, Enter selects, Escape clears; the focus ring shows', async () => {
      await canvas.focus();
      for (const key of ['ArrowUp', 'ArrowLeft', 'End', 'ArrowDown']) {
        await page.keyboard.press(key); // -> row 1, last column
      }
      await expect(canvas).toHaveAttribute('data-cursor', '1,2');
      await expect.poll(() => tooltipLines(tooltip)).toEqual(['L1H2', '0.125']);
      // the canvas' accessible alternative points at the cursor cell
      const active = await canvas.getAttribute('aria-activedescendant');
      await expect(canvas.locator(`[id="${active}"]`)).toHaveText('L1H2: 0.125');
      // a visible focus ring (keyboard focus)
      expect(await computedStyle(canvas, 'outline-style')).toBe('solid');
      expect(parseFloat(await computedStyle(canvas, 'outline-width'))).toBeGreaterThanOrEqual(2);
      await page.keyboard.press('ArrowLeft');
      await page.keyboard.press('Enter');
      await expect(canvas).toHaveAttribute('data-selected', '1,1');
      await expect.poll(() => kernelValue(page, 'hm.selected')).toEqual({ layer: 1, head: 1 });
      await canvas.focus();
      await page.keyboard.press('Escape');
      await expect(canvas).toHaveAttribute('data-selected', '');
      await expect.poll(() => kernelValue(page, 'hm.selected')).toBeNull();
    });

    await test.step('dark theme: drawn in the theme (canvas pixels), values keep their colour', async () => {
      await canvas.evaluate((e: Element) => (e as HTMLElement).blur()); // no keyboard cursor drawn
      await runCode(page, 'hm.selected = {"layer": 1, "head": 0}');
      await expect(canvas).toHaveAttribute('data-selected', '1,0');
      const g = await canvasGeometry(canvas);
      // inside cell (1, 0) (value 1.0), and on its selection outline (theme foreground)
      const inner = { x: 0.5 * g.cellWidth, y: 1.5 * g.cellHeight };
      const edge = { x: 0.5, y: 1.5 * g.cellHeight };
      await expect(root).toHaveAttribute('data-theme', 'light');
      const lightInner = await canvasPixel(canvas, inner.x, inner.y);
      const lightEdge = await canvasPixel(canvas, edge.x, edge.y);
      const lightBg = await computedStyle(root, 'background-color');
      await setTheme(page, 'JupyterLab Dark');
      await expect(root).toHaveAttribute('data-theme', 'dark');
      await expect.poll(() => computedStyle(root, 'background-color')).not.toBe(lightBg);
      await expect.poll(async () => luminance(await canvasPixel(canvas, edge.x, edge.y))).toBeGreaterThan(0.5);
      expect(luminance(lightEdge)).toBeLessThan(0.2); // dark outline on the light theme
      expect(await canvasPixel(canvas, inner.x, inner.y)).toEqual(lightInner); // same colour for the same value

      await setTheme(page, 'JupyterLab Light');
      await expect(root).toHaveAttribute('data-theme', 'light');
      await expect.poll(() => canvasPixel(canvas, edge.x, edge.y)).toEqual(lightEdge);
      await expect.poll(() => computedStyle(root, 'background-color')).toBe(lightBg);
    });
  });

  test('labels and title are rendered as text, never as HTML', async ({
    page,
    tmpPath
  }) => {
    await openNotebook(page, tmpPath, 'heatmap-xss.ipynb');
    const { index } = await runCode(
      page,
      `${REPO_PATH_PRELUDE}
import numpy as np
import lenswidget
xss = ${JSON.stringify(XSS)}
hm = lenswidget.widgets.head_heatmap(
    np.array([[0.5, -0.5]], dtype=np.float32),
    title=xss,
    row_labels=[xss],
    col_labels=[xss, "H1"],
)
hm`
    );
    const root = outputLocator(page, index).getByTestId('lw-root');
    const canvas = root.getByTestId('lw-heatmap-canvas');
    await expect(canvas).toBeVisible();
    await expect(root.getByTestId('lw-title')).toHaveText(XSS);
    await expect(root.getByTestId('lw-row-label')).toHaveText([XSS]);
    await expect(root.getByTestId('lw-col-label').first()).toHaveText(XSS);

    await hoverCanvasCell(canvas, 0, 0);
    await expect(root.getByTestId('lw-tooltip')).toBeVisible();

    // The SVG export escapes the untrusted strings.
    const svg = await download(page, root.getByTestId('lw-export-svg'));
    expect(svg.name).toMatch(/\.svg$/);
    expect(svg.text).toContain('<svg');
    expect(svg.text).not.toContain('<img');
    expect(svg.text).toContain('&lt;img');

    // Give a would-be <img onerror> time to fire.
    await page.waitForTimeout(300);
    expect(await root.locator('img').count()).toBe(0);
    expect(await page.evaluate(() => (window as any).__xss)).toBeUndefined();
  });
});
