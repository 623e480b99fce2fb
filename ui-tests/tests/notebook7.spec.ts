/**
 * The demo notebook's widgets in Jupyter Notebook 7 (the `notebook` package), in the same
 * Chromium and server as the JupyterLab specs: examples/demo.ipynb runs cell by cell in
 * Notebook 7's UI on the built-in SmolLM2-135M-Instruct, every widget renders live, and
 * clicks reach the kernel (the head heatmap drives the linked attention inspector, the
 * residual explorer opens a layer).
 */
import * as fs from 'fs';
import * as path from 'path';

import { expect, test } from '@jupyterlab/galata';

import { answered } from './utils';

const DEMO = path.join(__dirname, '..', '..', 'examples', 'demo.ipynb');

// Notebook 7 is its own app: a plain page of the same browser, not Galata's JupyterLab page.
test.use({ autoGoto: false });

test('the demo notebook widgets work in Notebook 7', async ({ page: lab, tmpPath }) => {
  test.setTimeout(480_000);
  const nb = JSON.parse(fs.readFileSync(DEMO, 'utf8'));
  const code = nb.cells.filter((c: { cell_type: string }) => c.cell_type === 'code').length;
  const nbPath = `${tmpPath}/demo.ipynb`;
  expect(await lab.contents.uploadContent(JSON.stringify(nb), 'text', nbPath)).toBe(true);
  const page = await lab.context().newPage();
  await page.goto(`notebooks/${nbPath}`);
  await expect(page.locator('#main-panel .jp-Notebook')).toBeVisible({ timeout: 60_000 });
  await expect(page.locator('.jp-Notebook .jp-Cell').first()).toBeVisible();

  await test.step('run every cell from Notebook 7 (Run All Cells)', async () => {
    await expect(page.locator('#jp-top-panel, #top-panel')).toBeVisible();
    await page.locator('.jp-Notebook .jp-Cell').first().click();
    await page.getByRole('menuitem', { name: 'Run', exact: true }).click();
    await page.getByRole('menuitem', { name: /^Run All Cells/ }).click();
    // Every code cell ran: an execution count, and no error output.
    await expect(page.locator('.jp-CodeCell .jp-InputPrompt', { hasText: /\[\d+\]/ })).toHaveCount(code, { timeout: 420_000 });
    await expect(page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]', { hasText: 'Traceback' })).toHaveCount(0);
  });

  const roots = page.getByTestId('lw-root');
  await test.step('every widget renders, live', async () => {
    // residual explorer, head heatmap + attention inspector, patching heatmap, patcher; then
    // the SAE section's residual explorer, patcher and feature dashboard
    const all = ['residual', 'heatmap', 'attention', 'heatmap', 'patcher', 'residual', 'patcher', 'feature'];
    await expect(roots).toHaveCount(all.length, { timeout: 60_000 });
    const kinds = await roots.evaluateAll(els => els.map(e => e.getAttribute('data-widget')));
    expect(kinds).toEqual(all);
    for (let i = 0; i < all.length; i++) {
      await expect(roots.nth(i)).toHaveAttribute('data-link', 'live');
      await expect(roots.nth(i).getByTestId('lw-error')).toBeHidden();
    }
  });

  await test.step('clicks reach the kernel', async () => {
    const residual = roots.nth(0);
    await answered(residual, () => residual.locator('[data-testid="lw-res-bar"][data-kind="attn"]').first().click());
    await expect(residual.getByTestId('lw-res-bars')).toHaveAttribute('data-level', 'heads');

    // The DLA heatmap is linked to the inspector: a click there shows that head there.
    const heatmap = roots.nth(1);
    const canvas = heatmap.getByTestId('lw-heatmap-canvas');
    await canvas.scrollIntoViewIfNeeded();
    const w = Number(await canvas.getAttribute('data-cell-width'));
    const h = Number(await canvas.getAttribute('data-cell-height'));
    await answered(heatmap, () => canvas.click({ position: { x: 3.5 * w, y: 9.5 * h } }));
    await expect(canvas).toHaveAttribute('data-selected', '9,3');
    await expect(roots.nth(2).getByTestId('lw-attn-canvas')).toHaveAttribute('data-head', '3', { timeout: 60_000 });
    await expect(roots.nth(2).getByTestId('lw-attn-canvas')).toHaveAttribute('data-layer', '9');
  });

  // The kernel Notebook 7 started is not Galata's to clean up.
  const sessions = await (await page.request.get('api/sessions')).json();
  for (const s of sessions.filter((x: { path: string }) => x.path.endsWith(nbPath))) {
    await page.request.delete(`api/sessions/${s.id}`);
  }
  await page.close();
});
