/**
 * Residual-stream explorer (``lenswidget.widgets.residual``) in a real JupyterLab, on
 * SmolLM2-135M-Instruct when it can be loaded (else the tiny model): drill down from the
 * component bars to a layer's heads and a head's pattern, breadcrumbs back, a new answer
 * typed in the picker changes the bars, a bad answer is rejected, all-heads heatmap and
 * the logit lens. Also measures (prints, never asserts) the click -> repaint time.
 * DOM contract: docs/residual.md.
 */
import { expect, test } from '@jupyterlab/galata';
import type { Locator } from '@playwright/test';
import * as os from 'os';

import { SMOLLM2_OR_TINY } from './models';
import {
  answered,
  kernelValue,
  medianP90,
  openNotebook,
  outputLocator,
  runCode,
  visibleToken,
  writeResult
} from './utils';

// " the" and " to" are single tokens for both the tiny tokenizer and SmolLM2's.
// About 30 tokens with SmolLM2's tokenizer.
const PROMPT =
  'The cat sat on the mat. The dog sat on the log. The bird sat in the tree and the fish swam. Then the cat sat on the';
const ANSWER = ' the';
const NEW_ANSWER = ' to';

/** Labels of the bars, in display order. */
async function barLabels(root: Locator): Promise<string[]> {
  return root
    .getByTestId('lw-res-bar')
    .evaluateAll(els => els.map(e => e.getAttribute('data-label') ?? ''));
}

/** Values of the bars (``data-value``), in display order. */
async function barValues(root: Locator): Promise<number[]> {
  return root
    .getByTestId('lw-res-bar')
    .evaluateAll(els => els.map(e => Number(e.getAttribute('data-value'))));
}

/** ms from a click on ``selector`` until the bars show ``level`` and the widget is idle. */
async function timedClick(root: Locator, selector: string, level: string): Promise<number> {
  return root.evaluate(
    (root: Element, { selector, level }) =>
      new Promise<number>((resolve, reject) => {
        const target = root.querySelector(selector) as HTMLElement | null;
        if (!target) {
          reject(new Error(`nothing matches ${selector}`));
          return;
        }
        const bars = root.querySelector('[data-testid="lw-res-bars"]');
        const done = () =>
          root.getAttribute('data-busy') === 'false' && bars?.getAttribute('data-level') === level;
        const timer = setTimeout(() => {
          observer.disconnect();
          reject(new Error(`no ${level} bars 30 s after clicking ${selector}`));
        }, 30_000);
        let t0 = 0;
        const observer = new MutationObserver(() => {
          if (!done()) {
            return;
          }
          observer.disconnect();
          clearTimeout(timer);
          requestAnimationFrame(() => resolve(performance.now() - t0));
        });
        observer.observe(root, { subtree: true, childList: true, attributes: true });
        t0 = performance.now();
        target.click();
      }),
    { selector, level }
  );
}

test.describe('residual explorer', () => {
  test('drill down, breadcrumbs, answer picker, all heads and logit lens', async ({
    page,
    tmpPath
  }) => {
    test.setTimeout(420_000);
    await openNotebook(page, tmpPath, 'residual.ipynb');
    await runCode(page, SMOLLM2_OR_TINY, { timeout: 180_000 });
    const info = await kernelValue<{ name: string; layers: number; heads: number }>(
      page,
      '{"name": model_name, "layers": model.cfg.n_layers, "heads": model.cfg.n_heads}'
    );
    const L = info.layers;
    const H = info.heads;
    const { index } = await runCode(
      page,
      [
        'from lenswidget.widgets.residual import residual',
        `w = residual(model, ${JSON.stringify(PROMPT)}, ${JSON.stringify(ANSWER)})`,
        'w'
      ].join('\n'),
      { timeout: 180_000 }
    );
    const root = outputLocator(page, index).getByTestId('lw-root');
    const bars = root.getByTestId('lw-res-bars');
    const crumbs = root.getByTestId('lw-res-crumb');
    await expect(root).toHaveAttribute('data-widget', 'residual');
    await expect(bars).toBeVisible();
    // Display order (by |value|, the default): what the kernel's `data` lists.
    const components = await kernelValue<string[]>(page, 'w.data["labels"]');
    const tokens = await kernelValue<string[]>(page, 'w.tokens');

    await test.step('component bars: labels, values, the biggest first, and the sum check', async () => {
      expect(components).toContain(`${L - 1}_attn_out`);
      expect(await barLabels(root)).toEqual(components);
      const values = await kernelValue<number[]>(page, 'w.data["values"].tolist()');
      const shown = await barValues(root);
      shown.forEach((v, i) => expect(v).toBeCloseTo(values[i], 5));
      const mags = shown.map(Math.abs);
      expect(mags).toEqual([...mags].sort((a, b) => b - a));
      await expect(root.getByTestId('lw-res-sort')).toHaveValue('abs');
      // Every non-zero bar is drawn at least 2 px wide, however small its value.
      const widths = await bars.locator('.lw-res-bar-fill').evaluateAll(els =>
        els.map(e => (e as HTMLElement).getBoundingClientRect().width)
      );
      widths.forEach((w, i) => {
        if (shown[i] !== 0) {
          expect(w).toBeGreaterThanOrEqual(1.9);
        }
      });
      await expect(root.getByTestId('lw-res-prompt-select')).not.toContainText('mean of 1');
      await expect(root.getByTestId('lw-res-check')).toHaveAttribute('data-ok', 'true');
      await expect(root.getByTestId('lw-res-check')).toContainText('model: logit − b_U');
      await expect(crumbs).toHaveText(['All components']);
    });

    await test.step('clicking an attention bar shows its heads with the right labels', async () => {
      await answered(root, () => root.locator(`[data-testid="lw-res-bar"][data-label="${L - 1}_attn_out"]`).click());
      await expect(bars).toHaveAttribute('data-level', 'heads');
      const heads = Array.from({ length: H }, (_, h) => `L${L - 1}H${h}`);
      const labels = await barLabels(root);
      expect(labels.at(-1)).toBe(`L${L - 1} b_O`); // the bias stays last
      expect([...labels].sort()).toEqual([...heads, `L${L - 1} b_O`].sort());
      await expect(crumbs).toHaveText(['All components', `${L - 1}_attn_out`]);
      expect(await kernelValue(page, 'w.path')).toEqual([`${L - 1}_attn_out`]);
      await expect(root.getByTestId('lw-res-check')).toContainText(`${L - 1}_attn_out`);
      await expect(root.getByTestId('lw-res-check')).toHaveAttribute('data-ok', 'true');
    });

    await test.step('clicking a head shows its attention pattern and effect', async () => {
      await root.locator(`[data-testid="lw-res-bar"][data-label="L${L - 1}H1"]`).click();
      const detail = root.getByTestId('lw-res-detail');
      await expect(detail).toBeVisible();
      await expect(detail).toHaveAttribute('data-label', `L${L - 1}H1`);
      const canvas = detail.getByTestId('lw-attn-canvas');
      await expect(canvas).toHaveAttribute('data-rows', String(tokens.length));
      await expect(canvas).toHaveAttribute('data-cols', String(tokens.length));
      await expect(canvas).toHaveAttribute('data-highlight', String(tokens.length - 1));
      await expect(root.getByTestId('lw-head-label')).toHaveText(`L${L - 1}H1 (locked)`);
      const from = detail.getByTestId('lw-res-attn-from').getByTestId('lw-token');
      await expect(from).toHaveText(tokens.map(visibleToken));
      await expect(detail.getByTestId('lw-res-promoted').getByTestId('lw-res-top-token')).toHaveCount(10);
      await expect(crumbs).toHaveText(['All components', `${L - 1}_attn_out`, `L${L - 1}H1`]);
      const sel = await kernelValue<Record<string, unknown>>(page, 'w.selection');
      expect(sel.kind).toBe('head');
      expect(sel.layer).toBe(L - 1);
      expect(sel.head).toBe(1);
    });

    await test.step('breadcrumbs go back', async () => {
      await crumbs.nth(1).click();
      await expect(crumbs).toHaveText(['All components', `${L - 1}_attn_out`]);
      await expect(root.getByTestId('lw-res-detail')).toBeHidden();
      await answered(root, () => crumbs.nth(0).click());
      await expect(bars).toHaveAttribute('data-level', 'components');
      expect(await barLabels(root)).toEqual(components);
      expect(await kernelValue(page, 'w.path')).toEqual([]);
    });

    await test.step('typing a new answer changes the bars (no forward pass)', async () => {
      await runCode(page, [
        '_lw_runs = [0]',
        '_lw_orig = model.run_with_cache',
        'def _lw_counted(*a, **k):',
        '    _lw_runs[0] += 1',
        '    return _lw_orig(*a, **k)',
        'model.run_with_cache = _lw_counted'
      ].join('\n'));
      const before = await barValues(root);
      const answer = root.getByTestId('lw-res-answer');
      await expect(answer).toHaveValue(ANSWER);
      await answer.fill(NEW_ANSWER);
      await answered(root, () => answer.press('Enter'));
      expect(await kernelValue(page, 'w.answer')).toEqual([NEW_ANSWER]);
      await expect.poll(() => barValues(root)).not.toEqual(before);
      const values = await kernelValue<number[]>(page, 'w.data["values"].tolist()');
      (await barValues(root)).forEach((v, i) => expect(v).toBeCloseTo(values[i], 5));
      await expect(root.getByTestId('lw-res-answer-current')).toHaveText(`logit of "${visibleToken(NEW_ANSWER)}"`);
      expect(await kernelValue(page, '_lw_runs[0]')).toBe(0);
    });

    await test.step('a multi-token answer is rejected with its tokenisation; bars unchanged', async () => {
      const before = await barValues(root);
      const answer = root.getByTestId('lw-res-answer');
      await answer.fill(' the cat sat');
      await root.getByTestId('lw-res-apply').click();
      const banner = root.getByTestId('lw-error');
      await expect(banner).toBeVisible();
      await expect(root.getByTestId('lw-error-text')).toContainText('tokens, not 1');
      expect(await barValues(root)).toEqual(before);
      expect(await kernelValue(page, 'w.answer')).toEqual([NEW_ANSWER]);
      await root.getByTestId('lw-error-dismiss').click();
      await expect(banner).toBeHidden();
    });

    await test.step('the all-heads switch shows the layer x head heatmap', async () => {
      await root.getByTestId('lw-res-all-heads').check();
      const canvas = root.getByTestId('lw-res-heads-canvas');
      await expect(canvas).toBeVisible();
      await expect(canvas).toHaveAttribute('data-rows', String(L));
      await expect(canvas).toHaveAttribute('data-cols', String(H));
      await expect(bars).toBeHidden();
      await answered(root, () => root.getByTestId('lw-res-all-heads').uncheck());
      await expect(bars).toBeVisible();
    });

    await test.step('the logit lens shows every layer and mid-layer', async () => {
      await root.locator('[data-testid="lw-res-tab"][data-view="lens"]').click();
      await expect(root.getByTestId('lw-res-lens')).toBeVisible();
      await expect(root.getByTestId('lw-res-lens-row')).toHaveCount(2 * L + 1, { timeout: 120_000 });
      await expect(root.getByTestId('lw-res-lens-row').last()).toHaveAttribute('data-label', 'final_post');
      const grid = root.getByTestId('lw-res-lens-canvas');
      await expect(grid).toHaveAttribute('data-rows', String(tokens.length));
      await expect(grid).toHaveAttribute('data-cols', String(L + 1));
    });

    await test.step('lens layout: nothing of the attribution view above it; the grid scrolls, labelled, opened at the end', async () => {
      await expect(root.getByTestId('lw-res-bars')).toBeHidden();
      await expect(root.getByTestId('lw-res-check')).toBeHidden();
      const scroller = root.getByTestId('lw-res-lens-scroll');
      const box = await scroller.evaluate((el: Element) => {
        const e = el as HTMLElement;
        const r = e.getBoundingClientRect();
        const root = e.closest('[data-testid="lw-root"]')!.getBoundingClientRect();
        const labels = Array.from(e.querySelectorAll('[data-testid="lw-res-lens-pos"]')).map(l => l.getBoundingClientRect());
        const last = e.querySelector('[data-testid="lw-res-lens-layer"]:last-child')!.getBoundingClientRect();
        return {
          overflow: e.scrollWidth - e.clientWidth,
          scrollLeft: e.scrollLeft,
          scrollbar: e.offsetHeight - e.clientHeight,
          left: r.left,
          right: r.right,
          rootRight: root.right,
          labelsInside: labels.every(l => l.left >= r.left - 1 && l.width > 0),
          lastLayer: [last.left, last.right]
        };
      });
      expect(box.right).toBeLessThanOrEqual(box.rootRight + 1); // the grid stays inside the widget
      if (box.overflow > 0) {
        expect(box.scrollbar).toBeGreaterThan(0); // a horizontal scrollbar takes room
        expect(box.scrollLeft).toBeGreaterThan(0); // opened at the late layers
      }
      expect(box.labelsInside).toBe(true); // position labels not clipped off to the left
      // final_post (the last column) is on screen
      expect(box.lastLayer[0]).toBeGreaterThanOrEqual(box.left - 1);
      expect(box.lastLayer[1]).toBeLessThanOrEqual(box.right + 1);
      // scrolled back to the start, the labels stay stuck to the left edge
      await scroller.evaluate((el: Element) => ((el as HTMLElement).scrollLeft = 0));
      await scroller.evaluate((el: Element) => ((el as HTMLElement).scrollLeft = 10_000));
      const stuck = await scroller.evaluate((el: Element) => {
        const r = el.getBoundingClientRect();
        const first = el.querySelector('[data-testid="lw-res-lens-pos"]')!.getBoundingClientRect();
        return first.left - r.left;
      });
      expect(Math.abs(stuck)).toBeLessThan(4);
      await answered(root, () => root.locator('[data-testid="lw-res-tab"][data-view="attribution"]').click());
      await expect(bars).toBeVisible();
    });

    await test.step('click -> repaint time (measurement: timings not asserted, their presence is)', async () => {
      const open: number[] = [];
      const back: number[] = [];
      const rounds = [L - 1, L - 2, 0, L - 1, L - 2, 0, L - 1, L - 2, 0, L - 1];
      for (const layer of rounds) {
        open.push(await timedClick(root, `[data-testid="lw-res-bar"][data-label="${layer}_attn_out"]`, 'heads'));
        back.push(await timedClick(root, '[data-testid="lw-res-crumb"][data-depth="0"]', 'components'));
      }
      // The measurement must exist: one finite time per click.
      expect(open).toHaveLength(rounds.length);
      expect(back).toHaveLength(rounds.length);
      for (const t of [...open, ...back]) {
        expect(Number.isFinite(t) && t > 0).toBe(true);
      }
      const o = medianP90(open);
      const b = medianP90(back);
      writeResult('residual_click', {
        what: 'residual explorer: click -> new bars painted and the reply in (not busy), ms',
        model: info.name,
        tokens: tokens.length,
        open_layer_ms: open.map(v => Math.round(v * 10) / 10),
        back_ms: back.map(v => Math.round(v * 10) / 10),
        open_layer_median_ms: o.median,
        open_layer_p90_ms: o.p90,
        back_median_ms: b.median,
        back_p90_ms: b.p90,
        target_ms: 50,
        cpus: os.cpus().length,
        load_average_1m: Math.round(os.loadavg()[0] * 100) / 100,
        date: new Date().toISOString()
      });
      test.info().annotations.push({
        type: 'measurement',
        description: `open median ${o.median} ms (p90 ${o.p90}), back median ${b.median} ms (p90 ${b.p90}); load ${os.loadavg()[0].toFixed(2)}`
      });
      expect(await kernelValue(page, 'w.path')).toEqual([]);
    });
  });
});
