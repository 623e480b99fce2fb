/**
 * Attention patterns as the browser keeps them: one byte per cell, as they arrive.
 *
 * A uint8 payload (`value = offset + scale * code`) is kept as a view on the received
 * buffer - no Float32 copy; colours come from a 256-entry table per code. A float16 /
 * float32 payload (scores, `precision="float16"`) is quantised to codes over its range for
 * drawing, and exact values are read from the received buffer on demand (hover).
 */
import { checkPayload, halfToFloat, product } from "./tensor";

export interface Codes {
  shape: number[];
  /** One byte per value, row-major. */
  codes: Uint8Array;
  /** Value of code 0 and the step between codes: `lo + step * code`. */
  lo: number;
  step: number;
  /** Exact value at flat index i (differs from the code's value only for float payloads). */
  exact(i: number): number;
  /** Bytes held for this tensor (codes, plus the float buffer when there is one). */
  bytes: number;
  /** Integer lists sent with the payload: thumbnail bin `edges`; which `heads` a partial layer holds. */
  edges: number[] | null;
  heads: number[] | null;
}

export const EMPTY_CODES: Codes = { shape: [0], codes: new Uint8Array(0), lo: 0, step: 1 / 255, exact: () => NaN, bytes: 0, edges: null, heads: null };

/** Decode a payload into codes; throws a TypeError describing what is malformed. */
export function decodeCodes(payload: unknown): Codes {
  if (!payload || typeof payload !== "object") throw new TypeError("tensor payload is not an object");
  const p = payload as Record<string, unknown>;
  if (!("buffer" in p)) return EMPTY_CODES;
  const { dims, n, bytes, width } = checkPayload(p);
  const ints = (v: unknown) => (Array.isArray(v) && v.every((e) => Number.isInteger(e)) ? (v as number[]) : null);
  const edges = ints(p.edges);
  const heads = ints(p.heads);
  if (width === 1) {
    const scale = typeof p.scale === "number" ? p.scale : 1 / 255;
    const offset = typeof p.offset === "number" ? p.offset : 0;
    return { shape: dims, codes: bytes, lo: offset, step: scale, exact: (i) => offset + scale * bytes[i]!, bytes: bytes.byteLength, edges, heads };
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const read = width === 4 ? (i: number) => view.getFloat32(i * 4, true) : (i: number) => halfToFloat(view.getUint16(i * 2, true));
  // Codes over [min(0, lowest), max(1, highest)] of the finite values.
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < n; i++) {
    const v = read(i);
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    else if (v > hi) hi = v;
  }
  const step = (hi - lo) / 255;
  const codes = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const v = read(i);
    codes[i] = Number.isFinite(v) ? Math.round((v - lo) / step) : 0;
  }
  return { shape: dims, codes, lo, step, exact: read, bytes: codes.byteLength + bytes.byteLength, edges, heads };
}

/** Decode, or {@link EMPTY_CODES} for a missing/empty payload. */
export function decodeCodesOrEmpty(payload: unknown): Codes {
  if (!payload || typeof payload !== "object" || !("buffer" in payload)) return EMPTY_CODES;
  return decodeCodes(payload);
}

/** Flat offset and size of the block `t[i, j, ...]` (leading indices) of a tensor. */
export function blockOf(t: Codes, ...index: number[]): { offset: number; size: number } {
  const inner = product(t.shape.slice(index.length));
  let offset = 0;
  for (let k = 0; k < index.length; k++) offset = offset * t.shape[k]! + index[k]!;
  return { offset: offset * inner, size: inner };
}
