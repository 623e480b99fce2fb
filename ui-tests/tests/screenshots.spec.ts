/**
 * Screenshot baselines of every widget in the light and the dark theme, so layout
 * regressions (a panel left on screen, a grid overflowing its box, labels clipped, a
 * theme not applied) fail a test. Deterministic inputs: fixed heatmap values and the
 * seeded tiny model (tests/models.py), a fixed viewport.
 *
 * Update the baselines after an intended visual change:
 *   scripts/ui-tests.sh --no-deps tests/screenshots.spec.ts --update-snapshots
 */
import { expect, test } from '@jupyterlab/galata';
import type { Locator } from '@playwright/test';

import { TINY_MODEL } from './models';
import { answered, openNotebook, outputLocator, runCode, setTheme } from './utils';

test.use({ viewport: { width: 1280, height: 1800 } });

const SHOT = { maxDiffPixelRatio: 0.01, animations: 'disabled', caret: 'hide', scale: 'css' } as const;

/** A widget root, scrolled into view, settled (not busy), the pointer away from it. */
async function ready(root: Locator): Promise<Locator> {
  await root.scrollIntoViewIfNeeded();
  await expect(root).toHaveAttribute('data-busy', 'false');
  await root.page().mouse.move(1, 1);
  await expect(root.getByTestId('lw-tooltip')).toBeHidden();
  return root;
}

test('widgets in the light and the dark theme (screenshots)', async ({ page, tmpPath }) => {
  test.setTimeout(300_000);
  await openNotebook(page, tmpPath, 'screenshots.ipynb');
  await runCode(page, TINY_MODEL);
  const shown = async (code: string) => outputLocator(page, (await runCode(page, code)).index).getByTestId('lw-root');
  const heatmap = await shown(
    [
      'import numpy as np, lenswidget',
      'vals = (np.arange(24, dtype=np.float32).reshape(4, 6) - 11.5) / 11.5',
      'lenswidget.widgets.head_heatmap(vals, title="Head heatmap", value_label="logit diff")'
    ].join('\n')
  );
  const residual = await shown(
    'from lenswidget.widgets.residual import residual\nres = residual(model, "The cat sat on the mat. The dog sat on the", " the", title="Residual")\nres'
  );
  const patcher = await shown(
    'from lenswidget.widgets.patcher import patcher\npatcher(model, "The cat sat on the mat. The dog", "The dog sat on the log. The cat")'
  );
  // Open a layer's heads and a head, so the drill-down layout is in the picture too.
  await answered(residual, () => residual.locator('[data-testid="lw-res-bar"][data-label="1_attn_out"]').click());
  await answered(residual, () => residual.locator('[data-testid="lw-res-bar"][data-label="L1H2"]').click());
  // The attention inspector last (its view changes most).
  const attention = await shown('lenswidget.widgets.attention(model, "The cat sat on the mat. The dog")');
  const widgets: Array<[string, Locator]> = [
    ['heatmap', heatmap],
    ['residual', residual],
    ['patcher', patcher],
    ['attention', attention]
  ];

  for (const theme of ['light', 'dark'] as const) {
    await test.step(`${theme} theme`, async () => {
      if (theme === 'dark') {
        await setTheme(page, 'JupyterLab Dark');
      }
      for (const [name, root] of widgets) {
        await expect(root).toHaveAttribute('data-theme', theme);
        await expect(await ready(root)).toHaveScreenshot(`${name}-${theme}.png`, SHOT);
      }
    });
  }

  await test.step('the residual logit lens tab', async () => {
    await setTheme(page, 'JupyterLab Light');
    await answered(residual, () => residual.locator('[data-testid="lw-res-tab"][data-view="lens"]').click());
    await expect(residual.getByTestId('lw-res-lens-canvas')).toBeVisible();
    await expect(await ready(residual)).toHaveScreenshot('residual-lens-light.png', SHOT);
  });
});
