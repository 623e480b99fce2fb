// Bundles one ESM file per widget into lenswidget/static/ (`--watch` for the HMR dev loop).
import * as esbuild from "esbuild";
import { existsSync, readdirSync } from "node:fs";

// Every src/<widget>/index.ts is one entry (src/shared holds the common modules).
const entries = Object.fromEntries(
  readdirSync("src", { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(`src/${d.name}/index.ts`))
    .map((d) => [d.name, `src/${d.name}/index.ts`]),
);

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
  metafile: !watch,
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
