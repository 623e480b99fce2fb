/**
 * Reusable helpers for the lenswidget browser specs.
 *
 * Notebooks are written through the Jupyter contents API and opened in
 * JupyterLab; code is put into cells through the notebook model (much faster
 * and more robust than typing it) and run through the real notebook UI, so
 * the outputs (including widget views) are rendered by JupyterLab exactly as
 * a user would see them.
 */
import * as fs from 'fs';
import * as path from 'path';

import { expect, IJupyterLabPageFixture } from '@jupyterlab/galata';
import type { Locator } from '@playwright/test';

/** Python source that makes the repository's helpers importable in a kernel. */
export const REPO_PATH_PRELUDE = [
  'import os, sys, json',
  "_lw_root = os.environ.get('LENSWIDGET_REPO_ROOT')",
  'if _lw_root and _lw_root not in sys.path:',
  '    sys.path.insert(0, _lw_root)'
].join('\n');

/** A cell's outputs as stored in the notebook model (nbformat JSON). */
export interface ICellOutput {
  output_type: string;
  name?: string;
  text?: string | string[];
  data?: Record<string, unknown>;
  ename?: string;
  evalue?: string;
  traceback?: string[];
}

/** Result of running a code cell. */
export interface IRunResult {
  /** Index of the cell in the notebook. */
  index: number;
  /** Concatenated stdout text. */
  stdout: string;
  /** Concatenated stderr text. */
  stderr: string;
  /** Raw nbformat outputs. */
  outputs: ICellOutput[];
}

/** Thrown when a cell run by {@link runCode} raised in the kernel. */
export class KernelError extends Error {}

function toText(t: string | string[] | undefined): string {
  if (t === undefined) {
    return '';
  }
  return Array.isArray(t) ? t.join('') : t;
}

/** Build a minimal nbformat 4 notebook holding the given code cells. */
export function makeNotebook(cells: string[] = []): Record<string, unknown> {
  return {
    cells: cells.map(source => ({
      cell_type: 'code',
      execution_count: null,
      metadata: {},
      outputs: [],
      source
    })),
    metadata: {
      kernelspec: {
        display_name: 'Python 3 (ipykernel)',
        language: 'python',
        name: 'python3'
      },
      language_info: { name: 'python' }
    },
    nbformat: 4,
    nbformat_minor: 5
  };
}

/**
 * Write a notebook into the test's temporary server folder, open it and wait
 * until its kernel is idle.
 *
 * @returns the notebook path relative to the server root.
 */
export async function openNotebook(
  page: IJupyterLabPageFixture,
  tmpPath: string,
  name = 'test.ipynb',
  cells: string[] = ['']
): Promise<string> {
  const nbPath = `${tmpPath}/${name}`;
  const ok = await page.contents.uploadContent(
    JSON.stringify(makeNotebook(cells)),
    'text',
    nbPath
  );
  expect(ok, `upload ${nbPath}`).toBeTruthy();
  expect(await page.notebook.openByPath(nbPath)).toBeTruthy();
  expect(await page.notebook.activate(name)).toBeTruthy();
  await waitForKernelIdle(page);
  return nbPath;
}

/** Wait until the current notebook's kernel is started and idle. */
export async function waitForKernelIdle(
  page: IJupyterLabPageFixture,
  timeout = 60_000
): Promise<void> {
  await page.waitForFunction(
    () => {
      const panel = (window as any).jupyterapp?.shell?.currentWidget;
      const ctx = panel?.sessionContext;
      const kernel = ctx?.session?.kernel;
      return !!kernel && kernel.status === 'idle';
    },
    undefined,
    { timeout }
  );
}

/** Number of cells of the current notebook. */
export async function cellCount(page: IJupyterLabPageFixture): Promise<number> {
  return page.evaluate(
    () => (window as any).jupyterapp.shell.currentWidget.content.model.cells.length
  );
}

/**
 * Replace the source of cell ``index`` of the current notebook (appending a
 * new code cell when ``index`` equals the number of cells).
 */
export async function setCellSource(
  page: IJupyterLabPageFixture,
  index: number,
  source: string
): Promise<void> {
  await page.evaluate(
    ({ index, source }) => {
      const panel = (window as any).jupyterapp.shell.currentWidget;
      const model = panel.content.model;
      if (index >= model.cells.length) {
        model.sharedModel.insertCell(model.cells.length, {
          cell_type: 'code',
          source
        });
      } else {
        model.cells.get(index).sharedModel.setSource(source);
      }
    },
    { index, source }
  );
}

/** nbformat outputs of cell ``index`` of the current notebook. */
export async function cellOutputs(
  page: IJupyterLabPageFixture,
  index: number
): Promise<ICellOutput[]> {
  return page.evaluate(index => {
    const panel = (window as any).jupyterapp.shell.currentWidget;
    const cell = panel.content.model.cells.get(index);
    return cell.outputs ? cell.outputs.toJSON() : [];
  }, index);
}

/**
 * Run cell ``index`` (through the notebook UI) and return its outputs.
 * Throws {@link KernelError} when the cell raised, unless ``allowError``.
 */
export async function runCell(
  page: IJupyterLabPageFixture,
  index: number,
  options: { allowError?: boolean; timeout?: number } = {}
): Promise<IRunResult> {
  const ran = await page.notebook.runCell(index, { inplace: true });
  expect(ran, `run cell ${index}`).toBeTruthy();
  // ``runCell`` waits for the execution count; also make sure the kernel is
  // done (outputs flushed) before reading them.
  await waitForKernelIdle(page, options.timeout ?? 120_000);
  const outputs = await cellOutputs(page, index);
  const result: IRunResult = {
    index,
    outputs,
    stdout: outputs
      .filter(o => o.output_type === 'stream' && o.name === 'stdout')
      .map(o => toText(o.text))
      .join(''),
    stderr: outputs
      .filter(o => o.output_type === 'stream' && o.name === 'stderr')
      .map(o => toText(o.text))
      .join('')
  };
  const error = outputs.find(o => o.output_type === 'error');
  if (error && !options.allowError) {
    const tb = (error.traceback ?? []).join('\n').replace(/\x1b\[[0-9;]*m/g, '');
    throw new KernelError(
      `cell ${index} raised ${error.ename}: ${error.evalue}\n${tb}`
    );
  }
  return result;
}

/**
 * Append a code cell holding ``source`` to the current notebook, run it and
 * return its outputs.
 */
export async function runCode(
  page: IJupyterLabPageFixture,
  source: string,
  options: { allowError?: boolean; timeout?: number } = {}
): Promise<IRunResult> {
  const index = await cellCount(page);
  await setCellSource(page, index, source);
  return runCell(page, index, options);
}

const VALUE_MARK = '__lenswidget_value__';

/**
 * Evaluate a Python expression in the kernel (in a new visible cell) and
 * return its value, transported as JSON.
 */
export async function kernelValue<T = unknown>(
  page: IJupyterLabPageFixture,
  expression: string
): Promise<T> {
  const { stdout } = await runCode(
    page,
    `import json as _lw_json\nprint(${JSON.stringify(VALUE_MARK)} + _lw_json.dumps(${expression}))`
  );
  const line = stdout.split('\n').find(l => l.startsWith(VALUE_MARK));
  if (line === undefined) {
    throw new Error(`no value printed for ${expression}: ${stdout}`);
  }
  return JSON.parse(line.slice(VALUE_MARK.length)) as T;
}

/** Locator of the output area of cell ``index``. */
export function outputLocator(
  page: IJupyterLabPageFixture,
  index: number
): Locator {
  return page
    .locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell')
    .nth(index)
    .locator('.jp-OutputArea-output');
}

/**
 * Geometry of a grid drawn on a canvas, in CSS pixels relative to the
 * canvas' bounding box (see the "Canvas geometry" section of src/DOM.md).
 */
export interface IGridGeometry {
  rows: number;
  cols: number;
  cellWidth: number;
  cellHeight: number;
  /** Left edge of column 0 (0 for lenswidget canvases). */
  x0: number;
  /** Top edge of row 0 (0 for lenswidget canvases). */
  y0: number;
}

/**
 * Read the grid geometry of a heatmap canvas from its ``data-rows``,
 * ``data-cols``, ``data-cell-width`` and ``data-cell-height`` attributes.
 */
export async function canvasGeometry(canvas: Locator): Promise<IGridGeometry> {
  const attrs = await canvas.evaluate((el: Element) => ({
    rows: el.getAttribute('data-rows'),
    cols: el.getAttribute('data-cols'),
    cellWidth: el.getAttribute('data-cell-width'),
    cellHeight: el.getAttribute('data-cell-height')
  }));
  const out: Record<string, number> = { x0: 0, y0: 0 };
  for (const [key, raw] of Object.entries(attrs)) {
    const value = raw === null ? NaN : Number(raw);
    if (!Number.isFinite(value)) {
      throw new Error(`canvas attribute for ${key} is missing or not a number: ${raw}`);
    }
    out[key] = value;
  }
  return out as unknown as IGridGeometry;
}

/** Position of the centre of grid cell (row, col), relative to the canvas. */
export function cellPosition(
  geometry: IGridGeometry,
  row: number,
  col: number
): { x: number; y: number } {
  if (row < 0 || row >= geometry.rows || col < 0 || col >= geometry.cols) {
    throw new Error(
      `cell (${row}, ${col}) outside a ${geometry.rows}x${geometry.cols} grid`
    );
  }
  return {
    x: geometry.x0 + (col + 0.5) * geometry.cellWidth,
    y: geometry.y0 + (row + 0.5) * geometry.cellHeight
  };
}

export interface IPoint {
  x: number;
  y: number;
}

/** Viewport coordinates of the centre of grid cell (row, col) of a canvas (for mouse drags). */
export async function cellPoint(canvas: Locator, row: number, col: number): Promise<IPoint> {
  const box = await canvas.boundingBox();
  if (!box) {
    throw new Error('canvas is not visible');
  }
  const p = cellPosition(await canvasGeometry(canvas), row, col);
  return { x: box.x + p.x, y: box.y + p.y };
}

/**
 * Move the mouse over the centre of grid cell (row, col) of a heatmap canvas.
 * The geometry is read from the canvas unless given.
 */
export async function hoverCanvasCell(
  canvas: Locator,
  row: number,
  col: number,
  geometry?: IGridGeometry
): Promise<void> {
  const g = geometry ?? (await canvasGeometry(canvas));
  const position = cellPosition(g, row, col);
  // Come from a neighbouring pixel so that a ``mousemove`` always fires
  // inside the canvas, even when the pointer is already on that cell.
  await canvas.hover({ position: { x: position.x - 1, y: position.y - 1 } });
  await canvas.hover({ position });
}

/** Click the centre of grid cell (row, col) of a heatmap canvas. */
export async function clickCanvasCell(
  canvas: Locator,
  row: number,
  col: number,
  geometry?: IGridGeometry
): Promise<void> {
  const g = geometry ?? (await canvasGeometry(canvas));
  await canvas.click({ position: cellPosition(g, row, col) });
}

/** A canvas' pixels as a data URL (to compare drawings before/after). */
export async function canvasPixels(canvas: Locator): Promise<string> {
  return canvas.evaluate((el: Element) => (el as HTMLCanvasElement).toDataURL());
}

/** A file the page downloaded. */
export interface IDownload {
  name: string;
  bytes: Buffer;
  text: string;
}

/** Click ``trigger`` and return the file it makes the browser download. */
export async function download(
  page: IJupyterLabPageFixture,
  trigger: Locator
): Promise<IDownload> {
  const [dl] = await Promise.all([
    page.waitForEvent('download', { timeout: 15_000 }),
    trigger.click()
  ]);
  const file = await dl.path();
  const bytes = fs.readFileSync(file);
  return { name: dl.suggestedFilename(), bytes, text: bytes.toString('utf8') };
}

/** Lines of a lenswidget tooltip (its child ``div``s' text). */
export async function tooltipLines(tooltip: Locator): Promise<string[]> {
  return tooltip.evaluate((el: Element) =>
    Array.from(el.children).map(c => (c.textContent ?? '').trim())
  );
}

/** Switch JupyterLab's theme (e.g. 'JupyterLab Dark') and wait for it. */
export async function setTheme(
  page: IJupyterLabPageFixture,
  theme: 'JupyterLab Light' | 'JupyterLab Dark' | string
): Promise<void> {
  await page.evaluate(async theme => {
    await (window as any).jupyterapp.commands.execute('apputils:change-theme', {
      theme
    });
  }, theme);
  const light = theme !== 'JupyterLab Dark';
  await expect(page.locator('body')).toHaveAttribute(
    'data-jp-theme-light',
    String(light)
  );
  // Let the new theme's CSS variables apply.
  await page.waitForTimeout(200);
}

/** Computed style property of the first element matched by ``locator``. */
export async function computedStyle(
  locator: Locator,
  property: string
): Promise<string> {
  return locator.evaluate(
    (el, property) => getComputedStyle(el).getPropertyValue(property),
    property
  );
}

/** Directory for measurement results (gitignored). */
export const RESULTS_DIR = path.join(
  __dirname,
  '..',
  'test-results',
  'measurements'
);

/** Write a JSON measurement to ``test-results/measurements/<name>.json`` and print it. */
export function writeResult(name: string, data: unknown): string {
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify(data, null, 2) + '\n');
  console.log(`[lenswidget measurement] ${name} -> ${path.relative(process.cwd(), file)}`);
  console.log(JSON.stringify(data, null, 1).replace(/\n\s*/g, ' '));
  return file;
}

const VISIBLE_WHITESPACE: Record<string, string> = {
  ' ': '·',
  '\n': '⏎',
  '\t': '→',
  '\r': '↵'
};

/**
 * A token as lenswidget displays it: whitespace made visible, the empty
 * token as ``∅`` (src/DOM.md, ``lw-token``).
 */
export function visibleToken(token: string): string {
  if (token === '') {
    return '∅';
  }
  return Array.from(token)
    .map(ch => VISIBLE_WHITESPACE[ch] ?? ch)
    .join('');
}

/** Requests a widget view sent so far (root `data-requests`, src/DOM.md *Lifecycle*). */
export async function requestsSent(root: Locator): Promise<number> {
  return Number((await root.getAttribute('data-requests')) ?? '0');
}

/**
 * Run ``action`` (a click, a key press...) and wait until it sent at least one request
 * to the kernel and the kernel answered every request of the view: not trivially true,
 * since the request count must grow first.
 */
export async function answered(
  root: Locator,
  action: () => Promise<unknown>,
  timeout = 60_000
): Promise<void> {
  const before = await requestsSent(root);
  await action();
  await expect
    .poll(() => requestsSent(root), { timeout, message: 'the action sent no request' })
    .toBeGreaterThan(before);
  await expect
    .poll(
      () =>
        root.evaluate(
          (el: Element) =>
            (el as HTMLElement).dataset.busy === 'false' &&
            (el as HTMLElement).dataset.answered === (el as HTMLElement).dataset.requests
        ),
      { timeout, message: 'the kernel did not answer every request' }
    )
    .toBe(true);
}

/** Median and 90th percentile (nearest rank) of ``xs``, rounded to 0.1. */
export function medianP90(xs: number[]): { n: number; median: number; p90: number } {
  const s = [...xs].sort((a, b) => a - b);
  const r = (v: number) => Math.round(v * 10) / 10;
  const median = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return { n: s.length, median: r(median), p90: r(s[Math.min(s.length - 1, Math.ceil(0.9 * s.length) - 1)]) };
}

/** RGBA of the canvas pixel at CSS position (x, y) relative to the canvas (device pixels sampled). */
export async function canvasPixel(
  canvas: Locator,
  x: number,
  y: number
): Promise<[number, number, number, number]> {
  return canvas.evaluate(
    (el: Element, { x, y }) => {
      const c = el as HTMLCanvasElement;
      const scale = c.width / c.getBoundingClientRect().width;
      const d = c.getContext('2d')!.getImageData(Math.floor(x * scale), Math.floor(y * scale), 1, 1).data;
      return [d[0], d[1], d[2], d[3]] as [number, number, number, number];
    },
    { x, y }
  );
}

/** Relative luminance (0..1) of an sRGB colour. */
export function luminance([r, g, b]: number[]): number {
  const lin = (c: number) => {
    const s = c / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
}
