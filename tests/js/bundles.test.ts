/**
 * The minified widget bundles stay lean (issue 13): each at most 60 KB, and no
 * colour-scheme library inside (the ramps are precomputed in src/shared/palettes.ts).
 * Builds in memory with the options of build.mjs (esbuild.options.mjs); writes nothing.
 */
import * as esbuild from "esbuild";
import { describe, expect, test } from "vitest";
import { DIVERGING, SEQUENTIAL } from "../../src/shared/palettes";
import { buildOptions, BUNDLE_LIMIT as LIMIT } from "../../esbuild.options.mjs";

describe("bundles", () => {
  test("each widget bundle is at most 60 KB minified and carries no d3 colour schemes", async () => {
    const options = buildOptions();
    expect(Object.keys(options.entryPoints as Record<string, string>).sort()).toEqual(expect.arrayContaining(["attention", "heatmap", "patcher", "residual"]));
    const result = await esbuild.build({ ...options, outdir: "out", write: false, metafile: true, logLevel: "silent" });
    const sizes: Record<string, number> = {};
    for (const [file, out] of Object.entries(result.metafile!.outputs)) {
      sizes[file] = out.bytes;
      const inputs = Object.keys(out.inputs);
      expect(inputs.filter((i) => /node_modules\/d3-(scale-chromatic|interpolate|color)\//.test(i)), file).toEqual([]);
    }
    for (const [file, bytes] of Object.entries(sizes)) expect(bytes, `${file}: ${bytes} B`).toBeLessThanOrEqual(LIMIT);
    // No unused ramp: the attention inspector draws probabilities only (no diverging RdBu).
    const attention = result.outputFiles!.find((f) => /attention\.js$/.test(f.path))!.text;
    expect(attention).toContain(SEQUENTIAL.controls[0]);
    expect(attention).not.toContain(DIVERGING.controls[0]);
  }, 60_000);
});
