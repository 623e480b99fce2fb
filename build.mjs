// Bundles one ESM file per widget into lenswidget/static/ (`--watch` for the HMR dev loop).
import * as esbuild from "esbuild";
import { buildOptions, BUNDLE_LIMIT } from "./esbuild.options.mjs";

const watch = process.argv.includes("--watch");
const options = buildOptions({ watch });

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
