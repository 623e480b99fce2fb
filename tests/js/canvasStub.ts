/** A recording 2D context, so drawing code runs under happy-dom (which has no canvas). */
import { vi } from "vitest";

export interface DrawCall {
  op: string;
  args: unknown[];
}

export function installCanvasStub(): { calls: DrawCall[]; restore: () => void } {
  const calls: DrawCall[] = [];
  const record = (op: string) => (...args: unknown[]) => {
    calls.push({ op, args });
  };
  const factory = function (this: HTMLCanvasElement) {
    return {
      canvas: this,
      fillStyle: "",
      strokeStyle: "",
      lineWidth: 1,
      font: "",
      textAlign: "start",
      textBaseline: "alphabetic",
      imageSmoothingEnabled: true,
      createImageData: (w: number, h: number) => ({ width: w, height: h, data: new Uint8ClampedArray(w * h * 4) }),
      putImageData: record("putImageData"),
      drawImage: record("drawImage"),
      clearRect: record("clearRect"),
      fillRect: record("fillRect"),
      strokeRect: record("strokeRect"),
      setTransform: record("setTransform"),
      scale: record("scale"),
      translate: record("translate"),
      rotate: record("rotate"),
      save: record("save"),
      restore: record("restore"),
      fillText: record("fillText"),
    };
  };
  const spy = vi.spyOn(HTMLCanvasElement.prototype, "getContext").mockImplementation(factory as never);
  return { calls, restore: () => spy.mockRestore() };
}
