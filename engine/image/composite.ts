import { maskAsBatch, repeatToBatchSize } from './layout.ts';
import { resizeNCHW } from './resize.ts';
import { describeShape, type MaskTensor, type Tensor } from '../core/tensor.ts';

const f32 = Math.fround;

export interface CompositeOptions {
  /** [B, H, W] (or [H, W]) weights of the source, bilinearly resized to the source's size. */
  mask?: MaskTensor;
  /** Pixels per unit of `x`/`y`: 1 for images, 8 for SD latents (positions are given in pixels). */
  multiplier?: number;
  /** Bilinearly resize the source to the destination's size first. */
  resizeSource?: boolean;
}

/**
 * ComfyUI's `composite()` (ImageCompositeMasked, LatentCompositeMasked) on [N, C, H, W]: the source,
 * repeated or cut to the destination's batch, is pasted with its top-left corner at
 * (x // multiplier, y // multiplier), blended as mask·source + (1 − mask)·destination and clipped
 * to the destination. Returns a new tensor.
 */
export function compositeNCHW(destination: Tensor, source: Tensor, x: number, y: number, opts: CompositeOptions = {}): Tensor {
  if (destination.shape.length !== 4)
    throw new Error(`composite destination must be [N, C, H, W], got ${describeShape(destination.shape)}`);
  if (source.shape.length !== 4) throw new Error(`composite source must be [N, C, H, W], got ${describeShape(source.shape)}`);
  const [b, c, H, W] = destination.shape;
  if (source.shape[1] !== c) {
    throw new Error(`composite: destination has ${c} channels but source has ${source.shape[1]}`);
  }
  const mult = opts.multiplier ?? 1;
  let src = source;
  if (opts.resizeSource && (src.shape[2] !== H || src.shape[3] !== W)) src = resizeNCHW(src, H, W, 'bilinear');
  src = repeatToBatchSize(src, b);
  const [, , sh, sw] = src.shape;
  const cx = Math.max(-sw * mult, Math.min(x, W * mult));
  const cy = Math.max(-sh * mult, Math.min(y, H * mult));
  const left = Math.floor(cx / mult);
  const top = Math.floor(cy / mult);

  let mask: Tensor | undefined;
  if (opts.mask) {
    const m = maskAsBatch(opts.mask);
    const m4 = { shape: [m.shape[0], 1, m.shape[1], m.shape[2]], data: m.data };
    mask = repeatToBatchSize(resizeNCHW(m4, sh, sw, 'bilinear'), b);
  }

  const out = new Float32Array(destination.data);
  for (let n = 0; n < b; n++) {
    for (let dy = 0; dy < sh; dy++) {
      const ty = top + dy;
      if (ty < 0 || ty >= H) continue;
      for (let dx = 0; dx < sw; dx++) {
        const tx = left + dx;
        if (tx < 0 || tx >= W) continue;
        const m = mask ? mask.data[(n * sh + dy) * sw + dx] : 1;
        const inv = f32(1 - m);
        for (let k = 0; k < c; k++) {
          const di = ((n * c + k) * H + ty) * W + tx;
          const s = src.data[((n * c + k) * sh + dy) * sw + dx];
          out[di] = f32(m * s) + f32(inv * out[di]);
        }
      }
    }
  }
  return { shape: [b, c, H, W], data: out };
}
