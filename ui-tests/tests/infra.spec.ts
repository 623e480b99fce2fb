/**
 * Smoke tests of the test infrastructure itself: JupyterLab starts, a
 * notebook runs code, and an anywidget renders and syncs with the kernel.
 */
import { expect, test } from '@jupyterlab/galata';

import { kernelValue, openNotebook, outputLocator, runCode } from './utils';

test.describe('infrastructure', () => {
  test('a notebook cell runs and its output is shown', async ({
    page,
    tmpPath
  }) => {
    await openNotebook(page, tmpPath, 'smoke.ipynb');
    const { index, stdout } = await runCode(page, 'print(1+1)');
    expect(stdout.trim()).toBe('2');
    await expect(outputLocator(page, index)).toHaveText('2');
  });

  test('an inline anywidget renders and syncs both ways', async ({
    page,
    tmpPath
  }) => {
    await openNotebook(page, tmpPath, 'anywidget.ipynb');
    const { index } = await runCode(
      page,
      [
        'import anywidget, traitlets',
        'class Counter(anywidget.AnyWidget):',
        '    _esm = """',
        'function render({ model, el }) {',
        '  const b = document.createElement("button");',
        '  b.dataset.testid = "lw-smoke-counter";',
        '  const show = () => { b.textContent = `count=${model.get("count")}`; };',
        '  b.addEventListener("click", () => {',
        '    model.set("count", model.get("count") + 1);',
        '    model.save_changes();',
        '  });',
        '  model.on("change:count", show);',
        '  show();',
        '  el.appendChild(b);',
        '}',
        'export default { render };',
        '"""',
        '    count = traitlets.Int(0).tag(sync=True)',
        'w = Counter(count=41)',
        'w'
      ].join('\n')
    );
    const button = outputLocator(page, index).getByTestId('lw-smoke-counter');
    await expect(button).toHaveText('count=41');

    // Browser -> kernel.
    await button.click();
    await expect(button).toHaveText('count=42');
    await expect
      .poll(() => kernelValue<number>(page, 'w.count'), { timeout: 10_000 })
      .toBe(42);

    // Kernel -> browser.
    await runCode(page, 'w.count = 100');
    await expect(button).toHaveText('count=100');
  });
});
