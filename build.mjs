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
};

if (watch) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
  console.log("esbuild: watching src/ (set ANYWIDGET_HMR=1 in the kernel for live reload)");
} else {
  await esbuild.build(options);
}
