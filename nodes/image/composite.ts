import { compositeNCHW } from '../../engine/image/composite.ts';
import { nchwToNhwc, nhwcToNchw } from '../../engine/image/layout.ts';
import { describeShape, type ImageTensor, type MaskTensor } from '../../engine/core/tensor.ts';
import { defineNode } from '../../engine/registry/types.ts';

const R = 16384;

/**
 * ComfyUI's node_helpers.image_alpha_fix: a source with more channels than the destination loses the
 * extra ones; one with fewer gets one more channel of 1.0 (an opaque alpha).
 */
function alphaFix(destination: ImageTensor, source: ImageTensor): ImageTensor {
  const dc = destination.shape[3];
  const [b, h, w, sc] = source.shape;
  if (dc === sc) return source;
  const nc = dc < sc ? dc : sc + 1;
  const px = b * h * w;
  const out = new Float32Array(px * nc);
  for (let i = 0; i < px; i++) {
    for (let k = 0; k < nc; k++) out[i * nc + k] = k < sc ? source.data[i * sc + k] : 1;
  }
  return { shape: [b, h, w, nc], data: out };
}

/** ImageCompositeMasked: `source` pasted into `destination` at (x, y), through an optional mask. */
export function compositeImages(
  destination: ImageTensor,
  source: ImageTensor,
  x: number,
  y: number,
  resizeSource: boolean,
  mask?: MaskTensor,
): ImageTensor {
  for (const [what, t] of [
    ['destination', destination],
    ['source', source],
  ] as const) {
    if (t.shape.length !== 4) throw new Error(`${what} must be an IMAGE [B, H, W, C], got shape ${describeShape(t.shape)}`);
  }
  const src = alphaFix(destination, source);
  const out = compositeNCHW(nhwcToNchw(destination), nhwcToNchw(src), x, y, { mask, multiplier: 1, resizeSource });
  return nchwToNhwc(out);
}

export const ImageCompositeMasked = defineNode({
  name: 'ImageCompositeMasked',
  displayName: 'Image Composite Masked',
  category: 'image/compositing',
  searchAliases: ['overlay', 'layer', 'paste image', 'images composition'],
  inputs: {
    required: {
      destination: { type: 'IMAGE' },
      source: { type: 'IMAGE' },
      x: { type: 'INT', default: 0, min: 0, max: R, step: 1 },
      y: { type: 'INT', default: 0, min: 0, max: R, step: 1 },
      resize_source: { type: 'BOOLEAN', default: false },
    },
    optional: { mask: { type: 'MASK' } },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ destination, source, x, y, resize_source, mask }) {
    return [compositeImages(destination, source, x, y, resize_source, mask)];
  },
});

export const nodes = [ImageCompositeMasked];
