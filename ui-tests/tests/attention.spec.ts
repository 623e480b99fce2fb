/**
 * Attention inspector (``lenswidget.widgets.attention``) in a real JupyterLab,
 * on a tiny random model with an offline tokenizer (tests/models.py).
 * DOM contract: src/DOM.md.
 */
import { expect, test } from '@jupyterlab/galata';
import type { Locator } from '@playwright/test';

import { TINY, TINY_MODEL } from './models';
import {
  canvasGeometry,
  canvasPixels,
  computedStyle,
  hoverCanvasCell,
  kernelValue,
  openNotebook,
  outputLocator,
  runCode,
  setTheme,
  tooltipLines,
  visibleToken
} from './utils';

const XSS = '<img src=x onerror=window.__xss=1>';
const PROMPT = 'The cat sat on the mat';
const NEW_PROMPT = 'When Mary and John went to the store';

/** Texts of the token strip's tokens (whitespace made visible). */
async function stripTokens(root: Locator): Promise<string[]> {
  return root
    .getByTestId('lw-token')
    .evaluateAll(els => els.map(e => e.textContent ?? ''));
}

/** Wait until the inspector is idle (no pending edit, no kernel work). */
async function waitIdle(root: Locator): Promise<void> {
  await expect(root).toHaveAttribute('data-busy', 'false');
}

test.describe('attention inspector', () => {
  test('thumbnails, tooltip, locking, layers, prompt edits and theme', async ({
    page,
    tmpPath
  }) => {
    await openNotebook(page, tmpPath, 'attention.ipynb');
    await runCode(page, TINY_MODEL);
    const { index } = await runCode(
      page,
      `import lenswidget\nw = lenswidget.widgets.attention(model, ${JSON.stringify(PROMPT)})\nw`
    );
    const root = outputLocator(page, index).getByTestId('lw-root');
    const canvas = root.getByTestId('lw-attn-canvas');
    const tooltip = root.getByTestId('lw-tooltip');
    const thumbs = root.getByTestId('lw-thumb');
    await expect(root).toHaveAttribute('data-widget', 'attention');
    await expect(canvas).toBeVisible();
    await waitIdle(root);

    const tokens = await kernelValue<string[]>(page, 'w.tokens');
    expect(tokens).toEqual(
      await kernelValue<string[]>(
        page,
        `[str(t) for t in model.to_str_tokens(${JSON.stringify(PROMPT)})]`
      )
    );
    const n = tokens.length;

    await test.step('one thumbnail per head, one row per layer', async () => {
      const { nLayers, nHeads } = TINY;
      await expect(thumbs).toHaveCount(nLayers * nHeads);
      await expect(root.getByTestId('lw-thumb-row')).toHaveCount(nLayers);
      const titles = await thumbs.evaluateAll(els =>
        els.map(e => e.getAttribute('title'))
      );
      const expected: string[] = [];
      for (let l = 0; l < nLayers; l++) {
        for (let h = 0; h < nHeads; h++) {
          expected.push(`L${l}H${h}`);
        }
      }
      expect(titles).toEqual(expected);
      await expect(root.getByTestId('lw-layer-select').locator('option')).toHaveText(
        Array.from({ length: nLayers }, (_, l) => `Layer ${l}`)
      );
    });

    await test.step('tokens and the dest x src canvas match the prompt', async () => {
      await expect(root.getByTestId('lw-prompt')).toHaveValue(PROMPT);
      await expect(root.getByTestId('lw-prompt')).toBeEnabled();
      expect(await stripTokens(root)).toEqual(tokens.map(visibleToken));
      await expect(root.getByTestId('lw-dest-label')).toHaveCount(n);
      await expect(root.getByTestId('lw-src-label')).toHaveCount(n);
      await expect(canvas).toHaveAttribute('data-rows', String(n));
      await expect(canvas).toHaveAttribute('data-cols', String(n));
    });

    await test.step('hovering the big canvas shows head, tokens and value', async () => {
      const layer = Number(await canvas.getAttribute('data-layer'));
      const head = Number(await canvas.getAttribute('data-head'));
      const i = n - 1;
      const j = 1;
      await hoverCanvasCell(canvas, i, j);
      await expect(tooltip).toBeVisible();
      const lines = await tooltipLines(tooltip);
      expect(lines[0]).toBe(`L${layer}H${head}`);
      expect(lines[1]).toBe(
        `${visibleToken(tokens[i])}[${i}] → ${visibleToken(tokens[j])}[${j}]`
      );
      const expected = await kernelValue<number>(
        page,
        `float(w.patterns[w.layers.index(${layer}), w.heads.index(${head}), ${i}, ${j}])`
      );
      // The full pattern travels as uint8: within one quantisation step.
      expect(Math.abs(Number(lines[2]) - expected)).toBeLessThan(1 / 255 + 1e-3);

      // Causal mask: a destination never attends to a later source.
      await hoverCanvasCell(canvas, 0, n - 1);
      await expect.poll(async () => (await tooltipLines(tooltip))[2]).toBe('0.000');
      await page.mouse.move(0, 0);
      await expect(tooltip).toBeHidden();
    });

    await test.step('hovering a thumbnail previews it', async () => {
      const thumb = root.locator('[data-testid="lw-thumb"][data-layer="2"][data-head="1"]');
      await thumb.hover();
      await expect(canvas).toHaveAttribute('data-mode', 'preview');
      await expect(canvas).toHaveAttribute('data-layer', '2');
      await expect(canvas).toHaveAttribute('data-head', '1');
      await expect(root.getByTestId('lw-head-label')).toHaveText('L2H1 (preview)');
      await page.mouse.move(0, 0);
      await expect(canvas).not.toHaveAttribute('data-mode', 'preview');
    });

    await test.step('clicking a thumbnail locks that head in the kernel', async () => {
      const thumb = root.locator('[data-testid="lw-thumb"][data-layer="1"][data-head="2"]');
      await thumb.click();
      await expect(thumb).toHaveAttribute('data-locked', 'true');
      await page.mouse.move(0, 0);
      await expect(canvas).toHaveAttribute('data-mode', 'locked');
      await expect(canvas).toHaveAttribute('data-layer', '1');
      await expect(canvas).toHaveAttribute('data-head', '2');
      await expect(canvas).toHaveAttribute('data-resolution', 'full');
      await expect
        .poll(() => kernelValue(page, '[w.layer, w.head]'))
        .toEqual([1, 2]);
      await expect(
        root.locator('[data-testid="lw-thumb-row"][data-layer="1"]')
      ).toHaveAttribute('data-selected', 'true');

      // Clicking it again unlocks.
      await thumb.click();
      await expect(thumb).toHaveAttribute('data-locked', 'false');
      await expect.poll(() => kernelValue(page, 'w.head')).toBeNull();
    });

    await test.step('the head atlas works from the keyboard', async () => {
      const grid = root.locator('[role="grid"]');
      await grid.focus();
      await page.keyboard.press('Home'); // head 0 of the cursor's layer (L1: the last click)
      await page.keyboard.press('ArrowRight');
      const active = async () =>
        grid.evaluate((g: Element) => {
          const el = document.getElementById(g.getAttribute('aria-activedescendant') ?? '');
          return el ? [el.getAttribute('data-layer'), el.getAttribute('data-head')] : null;
        });
      await expect.poll(active).toEqual(['1', '1']);
      await expect(canvas).toHaveAttribute('data-mode', 'preview');
      await page.keyboard.press('Enter');
      await expect.poll(() => kernelValue(page, '[w.layer, w.head]')).toEqual([1, 1]);
      await expect(
        root.locator('[data-testid="lw-thumb"][data-layer="1"][data-head="1"]')
      ).toHaveAttribute('aria-selected', 'true');
      await grid.focus();
      await page.keyboard.press('Escape');
      await expect.poll(() => kernelValue(page, 'w.head')).toBeNull();
      await grid.blur();
      await expect(canvas).not.toHaveAttribute('data-mode', 'preview');
    });

    await test.step('view options recolour without a rerun; zoom keeps the hover mapping', async () => {
      await waitIdle(root);
      const before = await canvasPixels(canvas);
      await root.getByTestId('lw-opt-hide-sink').check();
      await expect.poll(() => kernelValue(page, 'w.hide_sink')).toBe(true);
      await expect.poll(() => canvasPixels(canvas)).not.toBe(before);
      await root.getByTestId('lw-opt-per-head').check();
      await expect.poll(() => kernelValue(page, 'w.normalize')).toBe('head');
      // the legend spans the head's own maximum (the sink left out)
      const layer = Number(await canvas.getAttribute('data-layer'));
      const head = Number(await canvas.getAttribute('data-head'));
      const headMax = await kernelValue<number>(
        page,
        `float(w.patterns[w.layers.index(${layer}), w.heads.index(${head}), :, 1:].max())`
      );
      await expect
        .poll(async () => Number(await root.getByTestId('lw-legend').getAttribute('data-max')))
        .toBeCloseTo(headMax, 2);
      await root.getByTestId('lw-opt-gamma').selectOption('0.5');
      await expect.poll(() => kernelValue(page, 'w.gamma')).toBe(0.5);
      await runCode(page, 'w.normalize, w.hide_sink, w.gamma = "global", False, 1.0');
      await expect(root.getByTestId('lw-opt-per-head')).not.toBeChecked();
      await expect.poll(() => canvasPixels(canvas)).toBe(before);

      await root.getByTestId('lw-zoom-in').click();
      await expect(canvas).toHaveAttribute('data-zoom', '2');
      await canvas.hover({ position: { x: 5, y: 5 } });
      await root.getByTestId('lw-zoom-in').click(); // still at the top-left corner: offsets 0
      const g = await canvas.evaluate((c: Element) => ({
        w: Number(c.getAttribute('data-cell-width')),
        ox: Number(c.getAttribute('data-offset-x')),
        oy: Number(c.getAttribute('data-offset-y'))
      }));
      const row = Math.floor((g.oy + 10) / g.w);
      const col = Math.floor((g.ox + 10) / g.w);
      await canvas.hover({ position: { x: (col + 0.5) * g.w - g.ox, y: (row + 0.5) * g.w - g.oy } });
      await expect
        .poll(async () => (await tooltipLines(tooltip))[1])
        .toBe(`${visibleToken(tokens[row])}[${row}] → ${visibleToken(tokens[col])}[${col}]`);
      await root.getByTestId('lw-zoom-fit').click();
      await expect(canvas).toHaveAttribute('data-zoom', '1');
      await page.mouse.move(0, 0);
    });

    await test.step('clicking a token pins its highlight (not hover-only)', async () => {
      const tok = root.getByTestId('lw-token').nth(2);
      await tok.click();
      await page.mouse.move(0, 0);
      await expect(canvas).toHaveAttribute('data-highlight', '2');
      await tok.click(); // unpins; the pointer still hovers it
      await page.mouse.move(0, 0);
      await expect(canvas).toHaveAttribute('data-highlight', '');
    });

    await test.step('the layer selector sets the kernel layer', async () => {
      await root.getByTestId('lw-layer-select').selectOption('2');
      await waitIdle(root);
      await expect.poll(() => kernelValue(page, 'w.layer')).toBe(2);
      await expect(canvas).toHaveAttribute('data-layer', '2');

      // Kernel -> browser.
      await runCode(page, 'w.select(0, 3)');
      await expect(root.getByTestId('lw-layer-select')).toHaveValue('0');
      await expect(
        root.locator('[data-testid="lw-thumb"][data-layer="0"][data-head="3"]')
      ).toHaveAttribute('data-locked', 'true');
      await runCode(page, 'w.select(0, None)');
    });

    await test.step('a prompt edit shows new tokens and a new pattern', async () => {
      await waitIdle(root);
      const before = await canvasPixels(canvas);
      const newTokens = await kernelValue<string[]>(
        page,
        `[str(t) for t in model.to_str_tokens(${JSON.stringify(NEW_PROMPT)})]`
      );
      expect(newTokens).not.toEqual(tokens);
      const prompt = root.getByTestId('lw-prompt');
      await prompt.fill(NEW_PROMPT);
      await expect(root).toHaveAttribute('data-busy', 'true');
      await expect.poll(() => stripTokens(root)).toEqual(newTokens.map(visibleToken));
      await waitIdle(root);
      await expect(canvas).toHaveAttribute('data-rows', String(newTokens.length));
      await expect(canvas).toHaveAttribute('data-cols', String(newTokens.length));
      await expect(root.getByTestId('lw-dest-label')).toHaveCount(newTokens.length);
      expect(await canvasPixels(canvas)).not.toBe(before);
      // The token strip stays below the pattern whatever the prompt length (no jump to the right).
      const strip = await root.getByTestId('lw-token-strip').boundingBox();
      const box = await canvas.boundingBox();
      expect(strip!.y).toBeGreaterThanOrEqual(box!.y + box!.height);
      await expect(root.getByTestId('lw-error')).toBeHidden();
      expect(await kernelValue(page, 'w.prompt')).toBe(NEW_PROMPT);
      expect(await kernelValue(page, 'w.tokens')).toEqual(newTokens);
    });

    await test.step('dark theme applies to the widget', async () => {
      await expect(root).toHaveAttribute('data-theme', 'light');
      const lightBg = await computedStyle(root, 'background-color');
      const lightFg = await computedStyle(root, 'color');
      const lightPixels = await canvasPixels(canvas);
      await setTheme(page, 'JupyterLab Dark');
      await expect(root).toHaveAttribute('data-theme', 'dark');
      await expect
        .poll(() => computedStyle(root, 'background-color'))
        .not.toBe(lightBg);
      await expect.poll(() => computedStyle(root, 'color')).not.toBe(lightFg);
      // One colour meaning in both themes: the cells keep their colours.
      expect(await canvasPixels(canvas)).toBe(lightPixels);
    });
  });

  test('HTML-looking tokens render as text; a rejected prompt shows an error', async ({
    page,
    tmpPath
  }) => {
    await openNotebook(page, tmpPath, 'attention-xss.ipynb');
    await runCode(page, TINY_MODEL);
    const { index } = await runCode(
      page,
      'import lenswidget\nw = lenswidget.widgets.attention(model, "Hello world", debounce_ms=50, max_tokens=40)\nw'
    );
    const root = outputLocator(page, index).getByTestId('lw-root');
    await expect(root.getByTestId('lw-attn-canvas')).toBeVisible();
    await waitIdle(root);

    // Typed into the prompt box (browser -> kernel -> browser) ...
    const expected = await kernelValue<string[]>(
      page,
      `[str(t) for t in model.to_str_tokens(${JSON.stringify(XSS)})]`
    );
    await root.getByTestId('lw-prompt').fill(XSS);
    await expect.poll(() => stripTokens(root)).toEqual(expected.map(visibleToken));
    await waitIdle(root);

    // ... and a single token holding the whole string, with a title.
    const r2 = await runCode(
      page,
      `import torch\nxss = ${JSON.stringify(XSS)}\n` +
        'w2 = lenswidget.widgets.attention(torch.full((1, 2, 2), 0.5), [xss, xss + "!"], title=xss)\nw2'
    );
    const root2 = outputLocator(page, r2.index).getByTestId('lw-root');
    await expect(root2.getByTestId('lw-title')).toHaveText(XSS);
    await expect(root2.getByTestId('lw-token').first()).toHaveText(visibleToken(XSS));
    await expect(root2.getByTestId('lw-src-label').first()).toHaveAttribute(
      'data-index',
      '0'
    );
    await hoverCanvasCell(root2.getByTestId('lw-attn-canvas'), 1, 0);
    await expect
      .poll(async () => (await tooltipLines(root2.getByTestId('lw-tooltip')))[1])
      .toBe(`${visibleToken(XSS + '!')}[1] → ${visibleToken(XSS)}[0]`);

    // A rejected edit (more than max_tokens=40 tokens): error banner,
    // kernel state unchanged.
    const tokensBefore = await kernelValue<string[]>(page, 'w.tokens');
    await root
      .getByTestId('lw-prompt')
      .fill('the quick brown fox jumps over the lazy dog. '.repeat(4));
    const banner = root.getByTestId('lw-error');
    await expect(banner).toBeVisible();
    await expect(root.getByTestId('lw-error-text')).toContainText('max_tokens');
    await waitIdle(root);
    expect(await kernelValue(page, 'w.prompt')).toBe(XSS);
    expect(await kernelValue(page, 'w.tokens')).toEqual(tokensBefore);
    expect(await kernelValue<string>(page, 'w.error')).toContain('max_tokens');
    expect(await stripTokens(root)).toEqual(expected.map(visibleToken));
    await root.getByTestId('lw-error-dismiss').click();
    await expect(banner).toBeHidden();
    await expect.poll(() => kernelValue(page, 'w.error')).toBe('');

    // Give a would-be <img onerror> time to fire.
    await page.waitForTimeout(300);
    const imgs = await page
      .locator('.jp-OutputArea-output [data-testid="lw-root"] img')
      .count();
    expect(imgs).toBe(0);
    expect(await page.evaluate(() => (window as any).__xss)).toBeUndefined();
  });
});
