/**
 * SAE views in a real JupyterLab, on a tiny random HookedSAETransformer with a random SAE
 * (one kernel for the three views, to keep CI short):
 *
 * - residual explorer: the SAE panel (loaded at run time from static/saes.js) drills from
 *   the SAE into its feature bars (plus error term) and a feature's detail;
 * - patcher: dragging a feature-grid cell onto the corrupted run adds a feature chip; the
 *   kernel's metric equals lenswidget.sae.patching's exact patch of that cell;
 * - feature dashboard: progress while the kernel scans the corpus, then the top contexts,
 *   histogram and logit effects; the feature picker switches features.
 *
 * DOM contract: src/DOM.md (SAE views).
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import type { Locator } from '@playwright/test';

import {
  cellPoint,
  kernelValue,
  openNotebook,
  outputLocator,
  REPO_PATH_PRELUDE,
  runCode,
  visibleToken
} from './utils';

const HOOK = 'blocks.1.hook_resid_post';
// " the" and " to" are single tokens of the tiny tokenizer.
const PROMPT = 'The cat sat on the mat. The dog sat on the';
const CLEAN = 'The cat sat on the mat. The dog';
const CORRUPTED = 'The dog sat on the log. The cat';

const SETUP = `${REPO_PATH_PRELUDE}
import torch
torch.set_grad_enabled(False)
import lenswidget as lw
from lenswidget import HookedSAETransformer, SAE
from tests.models import tiny_cfg, tiny_tokenizer
model = HookedSAETransformer(tiny_cfg("gpt2", n_layers=3, n_heads=4, n_ctx=256), tokenizer=tiny_tokenizer())
sae = SAE.from_dict({"d_in": model.cfg.d_model, "d_sae": 64, "metadata": {"hook_name": "${HOOK}"}}, seed=0)
print("ready")`;

/** Run ``source`` (ending in a widget expression) in a new cell; the widget's root. */
async function show(page: IJupyterLabPageFixture, source: string): Promise<Locator> {
  const { index } = await runCode(page, source);
  const root = outputLocator(page, index).getByTestId('lw-root');
  await expect(root).toBeVisible();
  return root;
}

async function idle(root: Locator): Promise<void> {
  await expect(root).toHaveAttribute('data-busy', 'false');
}

test('SAE views: residual drill-down, feature patch by drag, feature dashboard', async ({
  page,
  tmpPath
}) => {
  test.setTimeout(240_000);
  await openNotebook(page, tmpPath, 'sae.ipynb');
  await runCode(page, SETUP);

  await test.step('residual explorer: SAE -> feature bars (with the error term) -> feature detail', async () => {
    const root = await show(
      page,
      `ex = lw.residual(model, ${JSON.stringify(PROMPT)}, answer=" the", incorrect=" to", saes=[sae])\nex`
    );
    const panel = root.getByTestId('lw-res-saes');
    await expect(panel).toBeVisible(); // the SAE bundle was loaded and mounted
    const button = panel.getByTestId('lw-res-sae');
    await expect(button).toHaveCount(1);
    await expect(button).toHaveAttribute('data-hook', HOOK);
    await button.click();
    const bars = panel.getByTestId('lw-res-sae-bar');
    await expect(bars.last()).toHaveAttribute('data-label', 'error');
    await idle(root);
    const labels = await bars.evaluateAll(els => els.map(e => e.getAttribute('data-label') ?? ''));
    expect(labels.slice(-3)).toEqual(['other features', 'b_dec', 'error']);
    expect(labels.slice(0, -3).every(l => /^F\d+$/.test(l))).toBe(true);
    await expect(panel.getByTestId('lw-res-sae-check')).toHaveAttribute('data-ok', 'true');
    // the bars add up to the direct attribution of the SAE's activation, as the kernel says
    const target = await kernelValue<number>(page, 'ex.sae_check["target"]');
    expect(Number(await panel.getByTestId('lw-res-sae-check').getAttribute('data-target'))).toBeCloseTo(target, 5);

    await bars.first().click();
    const detail = panel.getByTestId('lw-res-feature');
    await expect(detail).toBeVisible();
    await idle(root);
    const kernel = await kernelValue<{ path: string[]; tokens: string[]; promoted: string[]; act: number }>(
      page,
      '{"path": ex.sae_path, "tokens": ex.sae_detail["tokens"], "promoted": ex.sae_detail["promoted"], ' +
        '"act": ex.sae_detail["activation"]}'
    );
    expect(kernel.path).toEqual([HOOK, labels[0]]);
    await expect(detail).toHaveAttribute('data-label', labels[0]);
    const tokens = detail.getByTestId('lw-res-feature-acts').getByTestId('lw-token');
    await expect(tokens).toHaveCount(kernel.tokens.length);
    // every token shows its activation as text (not only on hover)
    await expect(detail.getByTestId('lw-act-value')).toHaveCount(kernel.tokens.length);
    const last = tokens.last();
    await expect(last).toHaveClass(/lw-hl/);
    expect(Number(await last.getAttribute('data-act'))).toBeCloseTo(kernel.act, 4);
    const promoted = await detail
      .getByTestId('lw-res-feature-promoted')
      .getByTestId('lw-res-feature-token')
      .evaluateAll(els => els.map(e => e.getAttribute('data-token')));
    expect(promoted).toEqual(kernel.promoted);

    await panel.getByTestId('lw-res-sae-crumb').first().click();
    await expect(detail).toBeHidden();
    await expect.poll(() => kernelValue<string[]>(page, 'ex.sae_path')).toEqual([]);
  });

  await test.step('patcher: drag a feature-grid cell onto the corrupted run (checked in the kernel)', async () => {
    const root = await show(
      page,
      `pw = lw.patcher(model, ${JSON.stringify(CLEAN)}, ${JSON.stringify(CORRUPTED)}, answer=" the", incorrect=" to", saes=[sae], feature_top_k=6)\npw`
    );
    const grid = root.getByTestId('lw-feature-grid');
    const corrupted = root.getByTestId('lw-corrupted-grid');
    await expect(grid).toBeVisible();
    const n = await kernelValue<number>(page, 'pw.runs.n_pos');
    await expect(grid).toHaveAttribute('data-rows', '6');
    await expect(grid).toHaveAttribute('data-cols', String(n));
    const features = (await grid.getAttribute('data-features'))!.split(',').map(Number);

    // press on (top feature, last position), move in steps onto the corrupted grid, release
    await grid.scrollIntoViewIfNeeded();
    const from = await cellPoint(grid, 0, n - 1);
    const to = await cellPoint(corrupted, 0, 0);
    await page.mouse.move(from.x, from.y);
    await page.mouse.down();
    await page.mouse.move(to.x, to.y, { steps: 12 });
    await page.mouse.up();

    const chips = root.getByTestId('lw-feature-chips').getByTestId('lw-chip');
    await expect(chips).toHaveCount(1);
    await expect(chips.first().getByTestId('lw-chip-label')).toHaveText(`F${features[0]} @ L1 resid_post · pos ${n - 1}`);
    await idle(root);
    const check = await kernelValue<{ chip: { features: number[]; positions: number[] }; value: number; ref: number }>(
      page,
      [
        '(lambda ref: {"chip": pw.feature_patches[0], "value": pw.metric_value, "ref": ref})(',
        '    float(__import__("lenswidget.sae.patching", fromlist=["x"]).patch_features(',
        '        model, sae, pw.runs.corrupted_tokens, pw._facts.clean_cache(sae), pw.runs.metric,',
        `        [[(${n - 1}, ${features[0]})]], verbose=False)[0]))`
      ].join('\n')
    );
    expect(check.chip.features).toEqual([features[0]]);
    expect(check.chip.positions).toEqual([n - 1]);
    expect(check.value).toBeCloseTo(check.ref, 5);
    expect(Number(await root.getByTestId('lw-metric').getAttribute('data-value'))).toBeCloseTo(check.value, 5);

    await root.getByTestId('lw-feature-exact').click();
    await expect(grid).toHaveAttribute('data-kind', 'exact');
    await idle(root);
    await chips.first().getByTestId('lw-chip-remove').click();
    await expect(chips).toHaveCount(0);
  });

  await test.step('feature dashboard: progress while scanning, then contexts, histogram, effects', async () => {
    // Record every progress value the page shows (the scan streams them while the kernel is busy).
    await page.evaluate(() => {
      const seen: number[] = [];
      (window as any).__lwProgress = seen;
      new MutationObserver(records => {
        for (const r of records) {
          const el = r.target as Element;
          if (el.getAttribute?.('data-testid') === 'lw-feat-progress') {
            seen.push(Number(el.getAttribute('data-done')));
          }
        }
      }).observe(document.body, { subtree: true, attributes: true, attributeFilter: ['data-done'] });
    });
    const root = await show(
      page,
      [
        // distinct strings: the dashboard skips repeated windows, and a scan of a handful of windows
        // ends inside one progress interval on a fast machine (CI saw no intermediate progress)
        'corpus = [f"note {i}: the cat sat on the mat and the dog sat on the log by house {i * 7}" for i in range(160)]',
        'dash = lw.feature(model, sae, 0, corpus, top_k=5, ctx_len=24, batch_size=1)',
        'dash'
      ].join('\n')
    );
    const results = root.getByTestId('lw-feat-results');
    await expect(results).toBeVisible({ timeout: 120_000 });
    await idle(root);
    const total = await kernelValue<number>(page, 'dash.n_windows');
    expect(total).toBeGreaterThanOrEqual(150); // one window per string: enough forward passes to stream progress
    const seen = await page.evaluate(() => (window as any).__lwProgress as number[]);
    expect(seen.some(v => v > 0 && v < total)).toBe(true); // progress arrived before the end
    await expect(root.getByTestId('lw-feat-progress')).toBeHidden();

    const kernel = await kernelValue<{ f: number; ctx: { value: number; tokens: string[]; top: number }[] }>(
      page,
      '{"f": dash.top_features(1)[0], "ctx": dash.contexts_data}'
    );
    const rows = root.getByTestId('lw-feat-context');
    await expect(rows).toHaveCount(kernel.ctx.length);
    const first = rows.first();
    expect(Number(await first.getAttribute('data-value'))).toBeCloseTo(kernel.ctx[0].value, 4);
    const top = first.getByTestId('lw-token').nth(kernel.ctx[0].top);
    await expect(top).toHaveClass(/lw-hl/);
    await expect(top).toHaveText(visibleToken(kernel.ctx[0].tokens[kernel.ctx[0].top]));
    expect(await root.getByTestId('lw-feat-hist-bar').count()).toBeGreaterThan(0);
    await expect(root.getByTestId('lw-feat-promoted').getByTestId('lw-feat-effect-token')).toHaveCount(10);

    // pick the most frequent feature in the number box: no new scan, new contexts
    const input = root.getByTestId('lw-feat-idx');
    await input.fill(String(kernel.f));
    await input.press('Enter');
    await idle(root);
    await expect.poll(() => kernelValue<number>(page, 'dash.idx')).toBe(kernel.f);
    const value = await kernelValue<number>(page, 'dash.contexts_data[0]["value"]');
    await expect.poll(async () => Number(await rows.first().getAttribute('data-value'))).toBeCloseTo(value, 4);
    // out of range: the kernel refuses and says why
    await input.fill('64');
    await input.press('Enter');
    await expect(root.getByTestId('lw-error-text')).toContainText('0..63');
    expect(await kernelValue<number>(page, 'dash.idx')).toBe(kernel.f);
  });
});
