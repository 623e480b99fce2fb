/**
 * Drag-to-patch widget (``lenswidget.widgets.patcher``) in a real JupyterLab, on a tiny
 * random model with an offline tokenizer (tests/models.py). Drags use Playwright's mouse
 * (down / move in steps / up) on canvas coordinates. DOM contract: docs/patcher.md.
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import type { Locator } from '@playwright/test';

import { TINY, TINY_MODEL } from './models';
import {
  cellPoint,
  type IPoint,
  kernelValue,
  openNotebook,
  outputLocator,
  requestsSent,
  runCode
} from './utils';

const CLEAN = 'The cat sat on the mat. The dog';
const CORRUPTED = 'The dog sat on the log. The cat';

/** Viewport coordinates of the centre of an element. */
async function centre(locator: Locator): Promise<IPoint> {
  const box = await locator.boundingBox();
  if (!box) {
    throw new Error('element is not visible');
  }
  return { x: box.x + box.width / 2, y: box.y + box.height / 2 };
}

/**
 * Scroll the grids into view (running cells scrolls the notebook), press on cell
 * ``from`` of the clean grid, move in steps to the point ``to()`` returns (computed
 * after scrolling), release there.
 */
async function dragCell(
  page: IJupyterLabPageFixture,
  clean: Locator,
  from: [number, number],
  to: () => Promise<IPoint>
): Promise<void> {
  await clean.scrollIntoViewIfNeeded();
  const start = await cellPoint(clean, from[0], from[1]);
  const end = await to();
  await page.mouse.move(start.x, start.y);
  await page.mouse.down();
  await page.mouse.move(end.x, end.y, { steps: 12 });
  await page.mouse.up();
}

/** The metric as the widget shows it (``data-value``, full precision). */
async function shownMetric(root: Locator): Promise<number> {
  return Number(await root.getByTestId('lw-metric').getAttribute('data-value'));
}

/** A notebook with the tiny model and `w = patcher(model, CLEAN, CORRUPTED)` shown; its root. */
async function openPatcher(page: IJupyterLabPageFixture, tmpPath: string, name: string): Promise<Locator> {
  await openNotebook(page, tmpPath, name);
  await runCode(page, TINY_MODEL);
  const { index } = await runCode(
    page,
    [
      'from lenswidget.widgets.patcher import patcher',
      `w = patcher(model, ${JSON.stringify(CLEAN)}, ${JSON.stringify(CORRUPTED)})`,
      'w'
    ].join('\n')
  );
  return outputLocator(page, index).getByTestId('lw-root');
}

test.describe('drag-to-patch', () => {
  test('drag a late residual cell onto the corrupted run, then remove the chip', async ({
    page,
    tmpPath
  }) => {
    const root = await openPatcher(page, tmpPath, 'patcher.ipynb');
    const clean = root.getByTestId('lw-clean-grid');
    const corrupted = root.getByTestId('lw-corrupted-grid');
    const chips = root.getByTestId('lw-chip');
    await expect(root).toHaveAttribute('data-widget', 'patcher');
    await expect(clean).toBeVisible();
    const n = await kernelValue<number>(page, 'w.runs.n_pos');
    const lastLayer = TINY.nLayers - 1;

    await test.step('both runs are shown as aligned layer x position grids', async () => {
      for (const grid of [clean, corrupted]) {
        await expect(grid).toHaveAttribute('data-rows', String(TINY.nLayers));
        await expect(grid).toHaveAttribute('data-cols', String(n));
      }
      await expect(root.getByTestId('lw-clean-token')).toHaveCount(n);
      await expect(root.getByTestId('lw-corrupted-token')).toHaveCount(n);
      await expect(chips).toHaveCount(0);
      expect(await shownMetric(root)).toBe(0);
    });

    await test.step('drag the last position of the last layer onto the corrupted grid', async () => {
      // Release on any cell of the corrupted grid: the patch lands on the same cell.
      await dragCell(page, clean, [lastLayer, n - 1], () => cellPoint(corrupted, 0, 0));
      await expect(chips).toHaveCount(1);
      await expect(chips.first().getByTestId('lw-chip-label')).toHaveText(
        `resid_pre · L${lastLayer} · pos ${n - 1}`
      );
      await expect(root).toHaveAttribute('data-busy', 'false');
      await expect.poll(() => shownMetric(root)).toBeGreaterThan(0.75);
      const metric = await shownMetric(root);
      expect(Math.abs(metric - 1)).toBeLessThan(0.25);
      expect(await kernelValue<number>(page, 'w.metric_value')).toBeCloseTo(metric, 6);
      await expect(corrupted).toHaveAttribute('data-patched-cells', '1');
      await expect(
        root.getByTestId('lw-top-patched').getByTestId('lw-top-token')
      ).toHaveCount(5);
    });

    await test.step('the copied code reproduces the metric', async () => {
      const value = await kernelValue<number>(
        page,
        '(lambda ns: (exec(w.code, ns), ns["metric_value"])[1])({"model": model})'
      );
      expect(value).toBeCloseTo(await shownMetric(root), 4);
    });

    await test.step('removing the chip returns the metric to the corrupted run', async () => {
      await chips.first().getByTestId('lw-chip-remove').click(); // click() scrolls it into view
      await expect(chips).toHaveCount(0);
      await expect.poll(() => shownMetric(root)).toBe(0);
      expect(await kernelValue(page, 'w.patches')).toEqual([]);
    });
  });

  test('keyboard, ablation target, sweep overlay and cancel', async ({
    page,
    tmpPath
  }) => {
    const root = await openPatcher(page, tmpPath, 'patcher-more.ipynb');
    const clean = root.getByTestId('lw-clean-grid');
    const chips = root.getByTestId('lw-chip');
    const n = await kernelValue<number>(page, 'w.runs.n_pos');

    await test.step('select with the keyboard, Enter patches, Delete removes', async () => {
      await clean.focus();
      await page.keyboard.press('ArrowDown'); // cursor to (0, 0)
      await page.keyboard.press('End'); // last position
      await page.keyboard.press('Shift+ArrowDown'); // two layers
      await expect(clean).toHaveAttribute('data-selection', `0,${n - 1},1,${n - 1}`);
      await page.keyboard.press('Enter');
      await expect(chips).toHaveCount(1);
      await expect(chips.first()).toHaveAttribute('data-act', 'resid_pre');
      expect(await kernelValue(page, 'w.patches[0]["layers"]')).toEqual([0, 1]);
      await chips.first().focus();
      await page.keyboard.press('Delete');
      await expect(chips).toHaveCount(0);
    });

    await test.step('dropping on the ablate target mean-ablates', async () => {
      await root.getByTestId('lw-ablation-mode').selectOption('mean');
      await expect.poll(() => kernelValue(page, 'w.ablation')).toBe('mean');
      await dragCell(page, clean, [1, 2], () => centre(root.getByTestId('lw-ablate-target')));
      await expect(chips).toHaveCount(1);
      await expect(chips.first()).toHaveAttribute('data-mode', 'mean');
      await expect(root).toHaveAttribute('data-busy', 'false');
    });

    await test.step('a drag released outside any grid sends nothing: the kernel is unchanged', async () => {
      const before = {
        patches: await kernelValue(page, 'w.patches'),
        revision: await kernelValue<number>(page, 'w.revision'),
        requests: await requestsSent(root)
      };
      // over the row labels, inside the widget
      await dragCell(page, clean, [0, 1], async () => {
        const box = await clean.boundingBox();
        return { x: box!.x - 12, y: box!.y + box!.height / 2 }; // over the row labels
      });
      await expect(root).toHaveAttribute('data-drag', 'idle');
      await expect(root.getByTestId('lw-drag-ghost')).toBeHidden();
      // outside the widget: over JupyterLab's top bar
      await dragCell(page, clean, [1, 1], async () => ({ x: 5, y: 5 }));
      await expect(root).toHaveAttribute('data-drag', 'idle');
      await expect(chips).toHaveCount(1);
      expect(await requestsSent(root)).toBe(before.requests);
      expect(await kernelValue(page, 'w.patches')).toEqual(before.patches);
      expect(await kernelValue<number>(page, 'w.revision')).toBe(before.revision); // no message reached it
    });

    await test.step('the drag label is positioned inside the widget, next to the pointer', async () => {
      await clean.scrollIntoViewIfNeeded();
      const start = await cellPoint(clean, 0, 0);
      await page.mouse.move(start.x, start.y);
      await page.mouse.down();
      await page.mouse.move(start.x + 40, start.y + 30, { steps: 6 });
      const ghost = root.getByTestId('lw-drag-ghost');
      await expect(ghost).toBeVisible();
      const [g, r] = [await ghost.boundingBox(), await root.boundingBox()];
      expect(await ghost.evaluate(e => getComputedStyle(e).position)).toBe('absolute');
      expect(g!.x).toBeGreaterThanOrEqual(r!.x);
      expect(g!.x + g!.width).toBeLessThanOrEqual(r!.x + r!.width + 1);
      expect(Math.abs(g!.x - (start.x + 40 + 14))).toBeLessThan(3); // beside the pointer, not offset
      expect(Math.abs(g!.y - (start.y + 30 + 10))).toBeLessThan(3);
      await page.keyboard.press('Escape');
      await page.mouse.up();
      await expect(ghost).toBeHidden();
    });

    await test.step('the exact sweep overlays the patching module result', async () => {
      await root.getByTestId('lw-sweep-exact').click();
      await expect(root.getByTestId('lw-sweep-status')).toHaveAttribute(
        'data-state',
        'done',
        { timeout: 60_000 }
      );
      await expect(clean).toHaveAttribute('data-overlay', 'exact');
      const same = await kernelValue<boolean>(
        page,
        [
          'bool(__import__("torch").allclose(w.sweep_result, __import__("lenswidget").patching.get_act_patch_resid_pre(',
          'model, w.runs.corrupted_tokens, w.runs.clean_cache, w.runs.metric, verbose=False), atol=1e-6))'
        ].join('')
      );
      expect(same).toBe(true);
      await root.getByTestId('lw-overlay-toggle').uncheck();
      await expect(clean).toHaveAttribute('data-overlay', 'diff');
    });

    await test.step('a running sweep can be cancelled from the browser', async () => {
      // A metric that holds the sweep's thread until the cancel arrives: the sweep is
      // certainly running when Cancel is clicked, with no timing assumption.
      const { index: i2 } = await runCode(
        page,
        [
          'import threading, time',
          'def held_metric(logits):',
          '    if threading.current_thread().name == "lenswidget-patcher-sweep":',
          '        deadline = time.monotonic() + 60',
          '        while not w2.cancel_requested and time.monotonic() < deadline:',
          '            time.sleep(0.02)',
          '    return logits[:, -1, 3].mean() - logits[:, -1, 4].mean()',
          `w2 = patcher(model, ${JSON.stringify(CLEAN)}, ${JSON.stringify(CORRUPTED)}, metric=held_metric, act="z", sweep_options={"max_batch": 1})`,
          'w2'
        ].join('\n')
      );
      const root2 = outputLocator(page, i2).getByTestId('lw-root');
      const status = root2.getByTestId('lw-sweep-status');
      await root2.getByTestId('lw-sweep-exact').click();
      await expect(status).toHaveAttribute('data-state', 'running');
      await expect(root2.getByTestId('lw-sweep-progress')).toBeVisible();
      await expect(root2.getByTestId('lw-sweep-exact')).toBeDisabled();
      // The kernel is idle while the sweep runs in its thread, so it hears "cancel".
      await root2.getByTestId('lw-sweep-cancel').click();
      await expect(status).toHaveAttribute('data-state', 'cancelled');
      expect(await kernelValue(page, 'w2.sweep_state')).toBe('cancelled');
      expect(await kernelValue(page, 'w2.sweep["complete"]')).toBe(false);
      await expect(root2.getByTestId('lw-legend-caption')).toContainText('partial');
      await expect(root2.getByTestId('lw-sweep-exact')).toBeEnabled();
    });
  });
});
