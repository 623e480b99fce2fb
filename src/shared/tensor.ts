/**
 * Decoding tensors sent by `lenswidget/widgets/codec.py`:
 * `{buffer, shape, dtype: "float16" | "float32" | "uint8", scale, offset}`; little-endian,
 * C order; uint8 values are `offset + scale * code`.
 */
export type DType = "float16" | "float32" | "uint8";

export interface Tensor {
  shape: number[];
  /** Dequantised values, row-major. */
  data: Float32Array;
}

export const EMPTY: Tensor = { shape: [0], data: new Float32Array(0) };

/** Decode one IEEE 754 half-precision value from its 16 bits. */
export function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // subnormal (and zero)
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

let halfTable: Float32Array | null = null;

/** All 65536 half values, built once (256 KB) so large arrays decode by lookup. */
function halfLookup(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) halfTable[i] = halfToFloat(i);
  }
  return halfTable;
}

/** A byte view of whatever the widget manager handed us (DataView, ArrayBuffer, typed array). */
export function bytesOf(buffer: unknown): Uint8Array {
  if (buffer instanceof Uint8Array) return buffer;
  if (ArrayBuffer.isView(buffer)) return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  if (buffer instanceof ArrayBuffer) return new Uint8Array(buffer);
  throw new TypeError("tensor buffer is not binary data");
}

type HalfArrayCtor = new (buffer: ArrayBufferLike, byteOffset: number, length: number) => ArrayLike<number>;
/** The platform's Float16Array where it exists (newer browsers); else decoded by hand. */
const nativeHalf = (globalThis as { Float16Array?: HalfArrayCtor }).Float16Array;

function littleEndian(): boolean {
  return new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
}

/** Number of elements of a shape. */
export function product(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** A payload's fields once checked: its shape, element count, bytes and bytes per element. */
export interface CheckedPayload {
  p: Record<string, unknown>;
  dims: number[];
  n: number;
  bytes: Uint8Array;
  width: number;
}

/** Check a tensor payload's shape, dtype and byte length; throws a TypeError naming what is malformed. */
export function checkPayload(payload: unknown): CheckedPayload {
  if (!payload || typeof payload !== "object") throw new TypeError("tensor payload is not an object");
  const p = payload as Record<string, unknown>;
  const shape = p.shape;
  if (!Array.isArray(shape) || !shape.every((s) => Number.isInteger(s) && (s as number) >= 0)) {
    throw new TypeError("tensor shape must be a list of non-negative integers");
  }
  const dims = shape as number[];
  const n = product(dims);
  const bytes = bytesOf(p.buffer);
  const width = p.dtype === "float32" ? 4 : p.dtype === "float16" ? 2 : p.dtype === "uint8" ? 1 : 0;
  if (!width) throw new TypeError(`unknown tensor dtype ${String(p.dtype)}`);
  if (bytes.byteLength !== n * width) {
    throw new TypeError(`tensor buffer has ${bytes.byteLength} bytes; shape [${dims.join(", ")}] needs ${n * width}`);
  }
  return { p, dims, n, bytes, width };
}

/** Decode a tensor payload; throws a TypeError describing what is malformed. */
export function decodeTensor(payload: unknown): Tensor {
  const { p, dims, n, bytes } = checkPayload(payload);
  const dtype = p.dtype as DType;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const data = new Float32Array(n);
  if (dtype === "float32") {
    for (let i = 0; i < n; i++) data[i] = view.getFloat32(i * 4, true);
  } else if (dtype === "float16" && nativeHalf && bytes.byteOffset % 2 === 0 && littleEndian()) {
    data.set(new nativeHalf(bytes.buffer, bytes.byteOffset, n));
  } else if (dtype === "float16") {
    const table = halfLookup();
    for (let i = 0; i < n; i++) data[i] = table[view.getUint16(i * 2, true)]!;
  } else {
    const scale = typeof p.scale === "number" ? p.scale : 1 / 255;
    const offset = typeof p.offset === "number" ? p.offset : 0;
    for (let i = 0; i < n; i++) data[i] = offset + scale * bytes[i]!;
  }
  return { shape: dims, data };
}

/** Decode, or return {@link EMPTY} for a missing/empty payload. */
export function decodeOrEmpty(payload: unknown): Tensor {
  if (!payload || typeof payload !== "object" || !("buffer" in payload)) return EMPTY;
  return decodeTensor(payload);
}

/** A contiguous slice `t[i]` along the first axis (shares memory). */
export function slice0(t: Tensor, i: number): Tensor {
  const inner = t.shape.slice(1);
  const size = product(inner);
  return { shape: inner, data: t.data.subarray(i * size, (i + 1) * size) };
}
