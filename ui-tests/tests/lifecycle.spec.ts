/**
 * Widget lifecycle in a real JupyterLab (src/DOM.md *Lifecycle*): the same widget in two
 * cells, clearing an output, a kernel that does not answer, a kernel restart while a
 * widget is shown, and a notebook reopened from its saved widget state (no kernel-side
 * widget: a read-only, labelled view). Uses the head heatmap: no model needed.
 */
import { expect, galata, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import type { Locator } from '@playwright/test';

import {
  answered,
  clickCanvasCell,
  hoverCanvasCell,
  kernelValue,
  openNotebook,
  outputLocator,
  REPO_PATH_PRELUDE,
  requestsSent,
  runCode,
  tooltipLines,
  writeResult
} from './utils';

const BUILD = `${REPO_PATH_PRELUDE}
import numpy as np
import lenswidget
vals = np.array([[0.5, -0.25, 0.0], [1.0, -1.0, 0.125]], dtype=np.float32)
hm = lenswidget.widgets.head_heatmap(vals, title="Lifecycle", value_label="logit diff")
hm`;

/** Collect uncaught page errors (a view must never throw). */
function pageErrors(page: IJupyterLabPageFixture): string[] {
  const errors: string[] = [];
  page.on('pageerror', err => errors.push(String(err)));
  return errors;
}

async function statusText(root: Locator): Promise<string> {
  return (await root.getByTestId('lw-status-text').textContent()) ?? '';
}

test.describe('widget lifecycle', () => {
  test('one widget in two cells; clearing one output leaves the widget working', async ({ page, tmpPath }) => {
    const errors = pageErrors(page);
    await openNotebook(page, tmpPath, 'two-views.ipynb');
    const first = await runCode(page, BUILD);
    const second = await runCode(page, 'hm');
    const a = outputLocator(page, first.index).getByTestId('lw-root');
    const b = outputLocator(page, second.index).getByTestId('lw-root');
    const canvasA = a.getByTestId('lw-heatmap-canvas');
    const canvasB = b.getByTestId('lw-heatmap-canvas');
    await expect(canvasA).toBeVisible();
    await expect(canvasB).toHaveAttribute('data-rows', '2');

    await test.step('a click in one view reaches the kernel and shows in both', async () => {
      await answered(b, () => clickCanvasCell(canvasB, 1, 2));
      await expect(canvasA).toHaveAttribute('data-selected', '1,2');
      await expect(canvasB).toHaveAttribute('data-selected', '1,2');
      await expect(a).toHaveAttribute('data-busy', 'false');
      expect(await kernelValue(page, 'hm.selected')).toEqual({ layer: 1, head: 2 });
      await answered(a, () => clickCanvasCell(canvasA, 0, 0));
      await expect(canvasB).toHaveAttribute('data-selected', '0,0');
    });

    await test.step('clearing the first output removes that view only', async () => {
      await page.evaluate(index => {
        const panel = (window as any).jupyterapp.shell.currentWidget;
        panel.content.widgets[index].model.outputs.clear();
      }, first.index);
      await expect(outputLocator(page, first.index).getByTestId('lw-root')).toHaveCount(0);
      await answered(b, () => clickCanvasCell(canvasB, 1, 0));
      await expect(canvasB).toHaveAttribute('data-selected', '1,0');
      expect(await kernelValue(page, 'hm.selected')).toEqual({ layer: 1, head: 0 });
      // Displayed again, the widget comes back with its state.
      const again = await runCode(page, 'hm');
      const c = outputLocator(page, again.index).getByTestId('lw-root');
      await expect(c.getByTestId('lw-heatmap-canvas')).toHaveAttribute('data-selected', '1,0');
      await expect(c.getByTestId('lw-legend-title')).toHaveText('logit diff');
    });
    expect(errors).toEqual([]);
  });

  test.describe('kernel', () => {
    // Galata's kernel API mock answers a restart with 201, which JupyterLab's kernel client
    // rejects: let kernel requests through unmocked here.
    test.use({ kernels: null });

    test('a kernel that does not answer, then a kernel restart', async ({ page, tmpPath }) => {
      const errors = pageErrors(page);
      await openNotebook(page, tmpPath, 'restart.ipynb');
      const { index } = await runCode(page, `${BUILD}\nhm.reply_timeout_ms = 1500\nhm`);
      const root = outputLocator(page, index).getByTestId('lw-root').last();
      const canvas = root.getByTestId('lw-heatmap-canvas');
      await expect(canvas).toBeVisible();

      await test.step('busy kernel: "kernel not responding", then the late answer', async () => {
        // Keep the kernel busy (no await: the comm message queues behind this request).
        await page.evaluate(() => {
          const kernel = (window as any).jupyterapp.shell.currentWidget.sessionContext.session.kernel;
          kernel.requestExecute({ code: 'import time; time.sleep(6)' });
        });
        await page.waitForTimeout(300);
        const before = await requestsSent(root);
        await clickCanvasCell(canvas, 1, 1);
        expect(await requestsSent(root)).toBe(before + 1);
        await expect(root).toHaveAttribute('data-link', 'unresponsive', { timeout: 5000 });
        await expect(root).toHaveAttribute('data-busy', 'true');
        expect(await statusText(root)).toBe('kernel not responding — re-run the cell');
        await expect(root).toHaveAttribute('data-link', 'live', { timeout: 30_000 });
        await expect(root).toHaveAttribute('data-busy', 'false');
        await expect(root.getByTestId('lw-status')).toBeHidden();
        expect(await kernelValue(page, 'hm.selected')).toEqual({ layer: 1, head: 1 });
      });

      await test.step('restart: the view says so, is not busy, and sends nothing', async () => {
        // What the kernel menu's Restart does, without its confirmation dialog.
        await page.evaluate(async () => {
          await (window as any).jupyterapp.shell.currentWidget.sessionContext.restartKernel();
        });
        await expect(root).toHaveAttribute('data-link', 'disconnected', { timeout: 30_000 });
        await expect(root).toHaveAttribute('data-busy', 'false');
        await expect(root.getByTestId('lw-status')).toBeVisible();
        expect(await statusText(root)).toContain('re-run the cell');
        const before = await requestsSent(root);
        await clickCanvasCell(canvas, 0, 1);
        expect(await requestsSent(root)).toBe(before);
        await expect(canvas).toHaveAttribute('data-selected', '1,1'); // unchanged
        expect(await statusText(root)).toBe('Not connected to a kernel: re-run the cell to interact.');
        // The new kernel has no widget at all (nothing half-changed).
        expect(await kernelValue(page, '"hm" in globals()')).toBe(false);
      });
      expect(errors).toEqual([]);
    });
  });

  test.describe('saved notebook', () => {
    test.use({
      mockSettings: {
        ...galata.DEFAULT_SETTINGS,
        '@jupyter-widgets/jupyterlab-manager:plugin': { saveState: true }
      }
    });

    test('reopened without its kernel: read-only, labelled, small saved state', async ({ page, tmpPath }) => {
      const errors = pageErrors(page);
      const nbPath = await openNotebook(page, tmpPath, 'saved.ipynb');
      // Two widgets (one shown) share one bundle in the saved state.
      const { index } = await runCode(page, `${BUILD}\nhm2 = lenswidget.widgets.head_heatmap(vals * 2)\nhm`);
      const live = outputLocator(page, index).getByTestId('lw-root');
      await answered(live, () => clickCanvasCell(live.getByTestId('lw-heatmap-canvas'), 1, 0));
      expect(await page.notebook.save()).toBe(true);

      await test.step('the saved state holds each bundle once and small per-widget state', async () => {
        const response = await page.request.get(`/api/contents/${nbPath}?type=notebook&content=1`);
        expect(response.ok()).toBe(true);
        const nb = (await response.json()).content;
        const state = nb.metadata.widgets['application/vnd.jupyter.widget-state+json'].state as Record<string, any>;
        const sizes = Object.values(state).map(m => ({
          model: m.model_name,
          name: m.state.name ?? m.state.title ?? '',
          bytes: JSON.stringify(m).length
        }));
        const bundles = Object.values(state).filter(m => typeof m.state.code === 'string');
        expect(bundles.map(m => m.state.name)).toEqual(['heatmap']);
        const widgets = sizes.filter(s => s.model === 'AnyModel');
        expect(widgets).toHaveLength(2);
        for (const w of widgets) {
          expect(w.bytes).toBeLessThan(6000);
        }
        writeResult('saved_state', { what: 'saved widget state per model, bytes (JSON)', sizes });
      });

      await test.step('reopened with a fresh kernel: the saved view renders, read-only', async () => {
        expect(await page.notebook.close()).toBe(true);
        await page.kernel.shutdownAll();
        expect(await page.notebook.openByPath(nbPath)).toBe(true);
        await page.notebook.activate('saved.ipynb');
        const roots = page.locator('.jp-NotebookPanel:not(.lm-mod-hidden)').getByTestId('lw-root');
        await expect(roots).toHaveCount(1, { timeout: 60_000 });
        const root = roots.first();
        const canvas = root.getByTestId('lw-heatmap-canvas');
        await expect(root).toHaveAttribute('data-link', 'saved');
        await expect(root.getByTestId('lw-status')).toBeVisible();
        expect(await statusText(root)).toBe('Saved view (read-only): re-run the cell to reconnect.');
        await expect(canvas).toHaveAttribute('data-selected', '1,0'); // the saved selection
        await expect(root.getByTestId('lw-title')).toHaveText('Lifecycle');
        // Looking still works; changing does not, and says how to reconnect.
        await hoverCanvasCell(canvas, 1, 2);
        await expect.poll(() => tooltipLines(root.getByTestId('lw-tooltip'))).toEqual(['L1H2', '0.125']);
        await clickCanvasCell(canvas, 0, 0);
        await expect(canvas).toHaveAttribute('data-selected', '1,0');
        expect(await statusText(root)).toBe('Not connected to a kernel: re-run the cell to interact.');
        expect(await requestsSent(root)).toBe(0);
      });
      expect(errors).toEqual([]);
    });
  });
});
