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

import { SMOLLM2_OR_TINY } from './models';
import {
  kernelValue,
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

async function waitIdle(root: Locator): Promise<void> {
  await expect(root).toHaveAttribute('data-busy', 'false');
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
    await waitIdle(root);
    const components = await kernelValue<string[]>(page, 'w.bars["labels"]');
    const tokens = await kernelValue<string[]>(page, 'w.tokens');

    await test.step('component bars: labels, values and the sum check', async () => {
      expect(components).toContain(`${L - 1}_attn_out`);
      expect(await barLabels(root)).toEqual(components);
      const values = await kernelValue<number[]>(page, 'w.data["values"].tolist()');
      const shown = await barValues(root);
      shown.forEach((v, i) => expect(v).toBeCloseTo(values[i], 5));
      await expect(root.getByTestId('lw-res-check')).toHaveAttribute('data-ok', 'true');
      await expect(root.getByTestId('lw-res-check')).toContainText('model: logit − b_U');
      await expect(crumbs).toHaveText(['All components']);
    });

    await test.step('clicking an attention bar shows its heads with the right labels', async () => {
      await root.locator(`[data-testid="lw-res-bar"][data-label="${L - 1}_attn_out"]`).click();
      await expect(bars).toHaveAttribute('data-level', 'heads');
      await waitIdle(root);
      const heads = Array.from({ length: H }, (_, h) => `L${L - 1}H${h}`);
      expect(await barLabels(root)).toEqual([...heads, `L${L - 1} b_O`]);
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
      await crumbs.nth(0).click();
      await expect(bars).toHaveAttribute('data-level', 'components');
      await waitIdle(root);
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
      await answer.press('Enter');
      await expect.poll(() => kernelValue(page, 'w.answer')).toEqual([NEW_ANSWER]);
      await waitIdle(root);
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
      await root.getByTestId('lw-res-all-heads').uncheck();
      await expect(bars).toBeVisible();
      await waitIdle(root);
    });

    await test.step('the logit lens shows every layer and mid-layer', async () => {
      await root.locator('[data-testid="lw-res-tab"][data-view="lens"]').click();
      await expect(root.getByTestId('lw-res-lens')).toBeVisible();
      await expect(root.getByTestId('lw-res-lens-row')).toHaveCount(2 * L + 1, { timeout: 120_000 });
      await expect(root.getByTestId('lw-res-lens-row').last()).toHaveAttribute('data-label', 'final_post');
      const grid = root.getByTestId('lw-res-lens-canvas');
      await expect(grid).toHaveAttribute('data-rows', String(tokens.length));
      await expect(grid).toHaveAttribute('data-cols', String(L + 1));
      await root.locator('[data-testid="lw-res-tab"][data-view="attribution"]').click();
      await expect(bars).toBeVisible();
      await waitIdle(root);
    });

    await test.step('click -> repaint time (measurement, not asserted)', async () => {
      const open: number[] = [];
      const back: number[] = [];
      for (const layer of [L - 1, L - 2, 0, L - 1, L - 2, 0]) {
        open.push(await timedClick(root, `[data-testid="lw-res-bar"][data-label="${layer}_attn_out"]`, 'heads'));
        back.push(await timedClick(root, '[data-testid="lw-res-crumb"][data-depth="0"]', 'components'));
      }
      const median = (xs: number[]) => {
        const s = [...xs].sort((a, b) => a - b);
        return Math.round(s[Math.floor(s.length / 2)] * 10) / 10;
      };
      writeResult('residual_click', {
        model: info.name,
        tokens: tokens.length,
        open_layer_ms: open.map(v => Math.round(v * 10) / 10),
        back_ms: back.map(v => Math.round(v * 10) / 10),
        open_layer_median_ms: median(open),
        back_median_ms: median(back),
        date: new Date().toISOString()
      });
      expect(await kernelValue(page, 'w.path')).toEqual([]);
    });
  });
});
