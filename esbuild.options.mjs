// The esbuild options of the widget bundles, shared by build.mjs and tests/js/bundles.test.ts.
import * as esbuild from "esbuild";
import { existsSync, readdirSync } from "node:fs";
import { readFile } from "node:fs/promises";

/** Each bundle should stay at most this big minified (issue 13; tests/js/bundles.test.ts checks it). */
export const BUNDLE_LIMIT = 60 * 1024;

/** Every src/<widget>/index.ts is one entry (src/shared holds the common modules). */
export function entries(root = "src") {
  return Object.fromEntries(
    readdirSync(root, { withFileTypes: true })
      .filter((d) => d.isDirectory() && existsSync(`${root}/${d.name}/index.ts`))
      .map((d) => [d.name, `${root}/${d.name}/index.ts`]),
  );
}

/**
 * Widget CSS lives in `const CSS = \`...\`` strings (src/** /styles.ts); esbuild does not
 * minify strings, so minify that CSS here.
 */
export const minifyCssStrings = {
  name: "minify-css-strings",
  setup(build) {
    build.onLoad({ filter: /[\\/]styles\.ts$/ }, async (args) => {
      let source = await readFile(args.path, "utf8");
      const m = /const CSS = `([^`$]*)`;/.exec(source);
      if (m) {
        const { code } = await esbuild.transform(m[1], { loader: "css", minify: true });
        source = source.replace(m[0], () => `const CSS = ${JSON.stringify(code.trim())};`);
      }
      return { contents: source, loader: "ts" };
    });
  },
};

export function buildOptions({ watch = false } = {}) {
  return {
    entryPoints: entries(),
    outdir: "lenswidget/static",
    bundle: true,
    format: "esm",
    // Native class fields and the like (JupyterLab 4 needs an evergreen browser anyway).
    target: "es2022",
    minify: !watch,
    sourcemap: watch ? "inline" : false,
    legalComments: "none",
    logLevel: "info",
    metafile: !watch,
    plugins: [minifyCssStrings],
  };
}
