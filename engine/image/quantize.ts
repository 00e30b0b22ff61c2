/**
 * numpy's `np.clip(255. * x, 0, 255).astype(np.uint8)` for one float32 value, the way ComfyUI turns
 * IMAGE values into bytes (SaveImage, lanczos): the product is a float32 (numpy keeps the array's
 * dtype), then truncated. NaN becomes 0.
 */
export function quantize8(x: number): number {
  const v = Math.fround(255 * x);
  return v > 0 ? (v >= 255 ? 255 : Math.trunc(v)) : 0;
}
