import { describeShape, type Tensor } from '../core/tensor.ts';

/**
 * Axis order conversions. IMAGE values travel as NHWC (ComfyUI's convention), while resizing and
 * compositing work on NCHW planes, as torch does after `movedim(-1, 1)`.
 */

export function nhwcToNchw(t: Tensor): Tensor {
  if (t.shape.length !== 4) throw new Error(`expected an [N, H, W, C] tensor, got shape ${describeShape(t.shape)}`);
  const [n, h, w, c] = t.shape;
  const out = new Float32Array(t.data.length);
  const src = t.data;
  for (let b = 0; b < n; b++) {
    for (let k = 0; k < c; k++) {
      const plane = (b * c + k) * h * w;
      for (let p = 0; p < h * w; p++) out[plane + p] = src[(b * h * w + p) * c + k];
    }
  }
  return { shape: [n, c, h, w], data: out };
}

export function nchwToNhwc(t: Tensor): Tensor {
  if (t.shape.length !== 4) throw new Error(`expected an [N, C, H, W] tensor, got shape ${describeShape(t.shape)}`);
  const [n, c, h, w] = t.shape;
  const out = new Float32Array(t.data.length);
  const src = t.data;
  for (let b = 0; b < n; b++) {
    for (let k = 0; k < c; k++) {
      const plane = (b * c + k) * h * w;
      for (let p = 0; p < h * w; p++) out[(b * h * w + p) * c + k] = src[plane + p];
    }
  }
  return { shape: [n, h, w, c], data: out };
}

/** A MASK as [B, H, W], whatever rank it came with (ComfyUI's `reshape((-1, H, W))`). */
export function maskAsBatch(mask: Tensor, what = 'mask'): Tensor {
  const r = mask.shape.length;
  if (r < 2) throw new Error(`${what} must have at least 2 dimensions [H, W], got shape ${describeShape(mask.shape)}`);
  const h = mask.shape[r - 2];
  const w = mask.shape[r - 1];
  const b = h * w === 0 ? 0 : mask.data.length / (h * w);
  return { shape: [b, h, w], data: mask.data };
}

/**
 * ComfyUI's `repeat_to_batch_size`: the first `batch` items when there are more, else the batch
 * repeated whole as often as needed and cut to `batch`.
 */
export function repeatToBatchSize(t: Tensor, batch: number): Tensor {
  const n = t.shape[0];
  if (n === batch) return t;
  if (n === 0) throw new Error(`cannot repeat an empty batch to ${batch} items`);
  const per = t.data.length / n;
  const out = new Float32Array(batch * per);
  for (let i = 0; i < batch; i++) out.set(t.data.subarray((i % n) * per, ((i % n) + 1) * per), i * per);
  return { shape: [batch, ...t.shape.slice(1)], data: out };
}
