import type { BuildOptions, Plugin } from "esbuild";
export const BUNDLE_LIMIT: number;
export function entries(root?: string): Record<string, string>;
export const minifyCssStrings: Plugin;
export function buildOptions(opts?: { watch?: boolean }): BuildOptions;
