/**
 * Bar display order, identical to `residual_encode.order` in Python: as given (`layer`)
 * or by value, descending; bias / remainder bars always stay last.
 */
export type Sort = "layer" | "value";

const PINNED = new Set(["bias", "remainder"]);

export function barOrder(values: ArrayLike<number>, kinds: readonly string[], sort: Sort): number[] {
  const idx = Array.from({ length: values.length }, (_, i) => i);
  if (sort !== "value") return idx;
  const free = idx.filter((i) => !PINNED.has(kinds[i] ?? ""));
  const pinned = idx.filter((i) => PINNED.has(kinds[i] ?? ""));
  free.sort((a, b) => (values[b] ?? 0) - (values[a] ?? 0) || a - b);
  return [...free, ...pinned];
}

/** What a click on a bar of `kind` does: open it (drill down / show detail) or nothing. */
export function isOpenable(kind: string): boolean {
  return kind === "attn" || kind === "mlp" || kind === "head" || kind === "neuron";
}
