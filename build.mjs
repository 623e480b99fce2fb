// Bundles one ESM file per widget into lenswidget/static/ (`--watch` for the HMR dev loop).
import * as esbuild from "esbuild";

const entries = {
  heatmap: "src/heatmap/index.ts",
  attention: "src/attention/index.ts",
};

const watch = process.argv.includes("--watch");
const options = {
  entryPoints: entries,
  outdir: "lenswidget/static",
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: !watch,
  sourcemap: watch ? "inline" : false,
  legalComments: "none",
  logLevel: "info",
};

if (watch) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
  console.log("esbuild: watching src/ (set ANYWIDGET_HMR=1 in the kernel for live reload)");
} else {
  await esbuild.build(options);
}
