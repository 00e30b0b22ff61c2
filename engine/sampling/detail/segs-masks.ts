import type { MaskTensor } from '../../core/tensor.ts';
import type { Segs } from '../../image/segs.ts';

/**
 * The Impact Pack's SEGS ↔ mask operations the detailers need, in its 8-bit arithmetic:
 * masks become bytes by (m·255).astype(uint8) (truncation), combine with bitwise OR / AND, and come
 * back as byte/255.
 */

const byte = (v: number): number => (v * 255) & 0xff;

/** segs_to_combined_mask: the OR of every segment's mask placed at its crop region, [1, H, W]. */
export function segsToCombinedMask(segs: Segs): MaskTensor {
  const [h, w] = segs.shape;
  const m = new Uint8Array(h * w);
  for (const seg of segs.segments) {
    const [x1, y1, x2, y2] = seg.cropRegion;
    const cw = x2 - x1;
    for (let y = Math.max(0, y1); y < Math.min(h, y2); y++) {
      for (let x = Math.max(0, x1); x < Math.min(w, x2); x++) m[y * w + x] |= byte(seg.croppedMask.data[(y - y1) * cw + (x - x1)]);
    }
  }
  return { shape: [1, h, w], data: Float32Array.from(m, (v) => v / 255) };
}

/** segs_bitwise_and_mask: each segment's mask ANDed with the mask's bytes over its crop region (the control net is dropped, as there). */
export function segsBitwiseAndMask(segs: Segs, mask: MaskTensor): Segs {
  const h = mask.shape[mask.shape.length - 2];
  const w = mask.shape[mask.shape.length - 1];
  const segments = segs.segments.map((seg) => {
    const [x1, y1, x2, y2] = seg.cropRegion;
    const cw = x2 - x1;
    const ch = y2 - y1;
    const out = new Float32Array(cw * ch);
    for (let y = 0; y < ch; y++) {
      for (let x = 0; x < cw; x++) {
        const iy = y1 + y;
        const ix = x1 + x;
        const other = iy >= 0 && iy < h && ix >= 0 && ix < w ? byte(mask.data[iy * w + ix]) : 0;
        out[y * cw + x] = (byte(seg.croppedMask.data[y * cw + x]) & other) / 255;
      }
    }
    return { ...seg, croppedMask: { shape: [ch, cw], data: out }, controlNet: undefined };
  });
  return { shape: segs.shape, segments };
}
