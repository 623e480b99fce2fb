// Bundles one ESM file per widget into lenswidget/static/ (`--watch` for the HMR dev loop).
import * as esbuild from "esbuild";
import { existsSync, readdirSync } from "node:fs";
import { readFile } from "node:fs/promises";

// Every src/<widget>/index.ts is one entry (src/shared holds the common modules).
const entries = Object.fromEntries(
  readdirSync("src", { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(`src/${d.name}/index.ts`))
    .map((d) => [d.name, `src/${d.name}/index.ts`]),
);

/**
 * Widget CSS lives in `const CSS = \`...\`` strings (src/**\/styles.ts); esbuild does not
 * minify strings, so minify that CSS here (a few KB per bundle).
 */
const minifyCssStrings = {
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

const watch = process.argv.includes("--watch");
const options = {
  entryPoints: entries,
  outdir: "lenswidget/static",
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: !watch,
  sourcemap: watch ? "inline" : false,
  legalComments: "none",
  logLevel: "info",
  metafile: !watch,
  plugins: [minifyCssStrings],
};

/** Each bundle should stay at most this big minified (issue 13; tests/js/bundles.test.ts checks it). */
const BUNDLE_LIMIT = 60 * 1024;

if (watch) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
  console.log("esbuild: watching src/ (set ANYWIDGET_HMR=1 in the kernel for live reload)");
} else {
  const result = await esbuild.build(options);
  for (const [file, out] of Object.entries(result.metafile.outputs)) {
    const over = out.bytes > BUNDLE_LIMIT ? `  OVER the ${BUNDLE_LIMIT} B budget` : "";
    console.log(`bundle ${file}: ${out.bytes} B${over}`);
  }
}
