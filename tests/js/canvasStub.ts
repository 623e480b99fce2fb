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
      beginPath: record("beginPath"),
      rect: record("rect"),
      clip: record("clip"),
    };
  };
  const spy = vi.spyOn(HTMLCanvasElement.prototype, "getContext").mockImplementation(factory as never);
  return { calls, restore: () => spy.mockRestore() };
}

/** Capture downloads: the blobs handed to `URL.createObjectURL` and the `download` names of clicked anchors. */
export function installDownloadStub(): { created: Blob[]; clicks: string[]; restore: () => void } {
  const created: Blob[] = [];
  const origCreate = URL.createObjectURL;
  URL.createObjectURL = ((b: Blob) => {
    created.push(b);
    return "blob:x";
  }) as typeof URL.createObjectURL;
  const clicks: string[] = [];
  const click = vi.spyOn(HTMLAnchorElement.prototype, "click").mockImplementation(function (this: HTMLAnchorElement) {
    clicks.push(this.download);
  });
  return {
    created,
    clicks,
    restore: () => {
      click.mockRestore();
      URL.createObjectURL = origCreate;
    },
  };
}
