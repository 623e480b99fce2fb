/**
 * Playwright configuration for the lenswidget browser tests.
 *
 * Playwright starts JupyterLab itself (``webServer`` below) from the
 * repository's virtual environment and drives the Debian ``chromium``
 * (never a downloaded browser).
 *
 * Environment variables:
 *   LENSWIDGET_JUPYTER          jupyter executable (default ../.venv/bin/jupyter)
 *   LENSWIDGET_UI_PORT          server port (default 8917)
 *   LENSWIDGET_CHROMIUM         browser executable (default /usr/bin/chromium)
 *   LENSWIDGET_UI_REUSE_SERVER  1: use an already running server on the port
 */
import * as path from 'path';

import { defineConfig } from '@playwright/test';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const baseConfig = require('@jupyterlab/galata/lib/playwright-config');

const port = Number(process.env.LENSWIDGET_UI_PORT ?? '8917');
const jupyter =
  process.env.LENSWIDGET_JUPYTER ??
  path.join(__dirname, '..', '.venv', 'bin', 'jupyter');
const chromium = process.env.LENSWIDGET_CHROMIUM ?? '/usr/bin/chromium';

export default defineConfig({
  ...baseConfig,
  testDir: './tests',
  outputDir: './test-results/artifacts',
  // One kernel + one browser at a time: CI machines have two cores.
  workers: 1,
  fullyParallel: false,
  forbidOnly: !!process.env.CI,
  retries: process.env.CI ? 1 : 0,
  // Each test starts a kernel and imports torch: allow more than the default.
  timeout: 180_000,
  expect: { timeout: 30_000 },
  reporter: [
    ['list'],
    ['html', { open: 'never', outputFolder: 'playwright-report' }],
    ['json', { outputFile: 'test-results/results.json' }]
  ],
  use: {
    ...baseConfig.use,
    baseURL: `http://127.0.0.1:${port}`,
    browserName: 'chromium',
    // Video needs Playwright's own ffmpeg download; traces and screenshots
    // work with the system browser.
    video: 'off',
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    actionTimeout: 30_000,
    navigationTimeout: 60_000,
    launchOptions: {
      executablePath: chromium,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--disable-default-apps',
        '--disable-extensions',
        '--no-first-run',
        '--no-default-browser-check',
        '--mute-audio'
      ]
    }
  },
  // The infrastructure smoke tests run first; when they fail (JupyterLab,
  // the browser or the widget manager is broken) the widget specs are
  // skipped instead of failing one by one. `--no-deps` runs a widget spec
  // alone.
  projects: [
    { name: 'infra', testMatch: /infra\.spec\.ts$/ },
    {
      name: 'widgets',
      testMatch: /\.spec\.ts$/,
      testIgnore: /infra\.spec\.ts$/,
      dependencies: ['infra']
    }
  ],
  webServer: {
    // The server log goes to a file: it is noisy (Galata creates and deletes
    // folders and kernels for every test) and only useful when debugging.
    command: `mkdir -p test-results && exec "${jupyter}" lab --config jupyter_server_test_config.py > test-results/jupyter-server.log 2>&1`,
    cwd: __dirname,
    url: `http://127.0.0.1:${port}/lab`,
    timeout: 120_000,
    reuseExistingServer: process.env.LENSWIDGET_UI_REUSE_SERVER === '1',
    // SIGTERM (not the default SIGKILL): the server shuts its kernels down
    // and removes its scratch folder.
    gracefulShutdown: { signal: 'SIGTERM', timeout: 15_000 },
    stdout: 'ignore',
    stderr: 'ignore',
    env: { ...process.env, LENSWIDGET_UI_PORT: String(port) } as Record<
      string,
      string
    >
  }
});
