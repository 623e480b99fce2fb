/** Typed reads of model traits (untrusted: anything unexpected becomes the default). */
import type { WidgetModel } from "./types";

export function getString(model: WidgetModel, key: string, fallback = ""): string {
  const v = model.get(key);
  return typeof v === "string" ? v : fallback;
}

/** A list's items as strings ([] unless `v` is an array). */
export function toStrings(v: unknown): string[] {
  return Array.isArray(v) ? v.map((x) => (typeof x === "string" ? x : String(x))) : [];
}

export function getStrings(model: WidgetModel, key: string): string[] {
  return toStrings(model.get(key));
}

export function getInts(model: WidgetModel, key: string): number[] {
  const v = model.get(key);
  return Array.isArray(v) ? v.filter((x): x is number => Number.isInteger(x)) : [];
}

export function getNumber(model: WidgetModel, key: string): number | null {
  const v = model.get(key);
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

export function getInt(model: WidgetModel, key: string): number | null {
  const v = model.get(key);
  return Number.isInteger(v) ? (v as number) : null;
}

/** Filename-safe slug of a title. */
export function slug(text: string, fallback: string): string {
  const s = text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 60);
  return s || fallback;
}
