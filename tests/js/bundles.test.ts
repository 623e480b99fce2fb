/**
 * The minified widget bundles stay lean (issue 13): each at most 60 KB, and no
 * colour-scheme library inside (the ramps are precomputed in src/shared/palettes.ts).
 * Builds in memory with the options of build.mjs; writes nothing.
 */
import * as esbuild from "esbuild";
import { existsSync, readdirSync } from "node:fs";
import { describe, expect, test } from "vitest";

const LIMIT = 60 * 1024;

describe("bundles", () => {
  test("each widget bundle is at most 60 KB minified and carries no d3 colour schemes", async () => {
    const entries = Object.fromEntries(
      readdirSync("src", { withFileTypes: true })
        .filter((d) => d.isDirectory() && existsSync(`src/${d.name}/index.ts`))
        .map((d) => [d.name, `src/${d.name}/index.ts`]),
    );
    expect(Object.keys(entries).sort()).toEqual(expect.arrayContaining(["attention", "heatmap", "patcher", "residual"]));
    const result = await esbuild.build({
      entryPoints: entries,
      outdir: "out",
      bundle: true,
      format: "esm",
      target: "es2020",
      minify: true,
      legalComments: "none",
      write: false,
      metafile: true,
      logLevel: "silent",
    });
    const sizes: Record<string, number> = {};
    for (const [file, out] of Object.entries(result.metafile.outputs)) {
      sizes[file] = out.bytes;
      const inputs = Object.keys(out.inputs);
      expect(inputs.filter((i) => /node_modules\/d3-(scale-chromatic|interpolate|color)\//.test(i)), file).toEqual([]);
    }
    for (const [file, bytes] of Object.entries(sizes)) expect(bytes, `${file}: ${bytes} B`).toBeLessThanOrEqual(LIMIT);
  }, 60_000);
});
