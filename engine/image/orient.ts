import { describeShape, type Tensor } from '../core/tensor.ts';

/**
 * torch.rot90 and torch.flip over the two spatial axes of a 4-D tensor, for IMAGE ([B, H, W, C])
 * and LATENT ([B, C, H, W]) alike: the tensor is seen as [P, H, W, Q], P the axes before H and Q
 * those after W.
 */

export type SpatialLayout = 'NHWC' | 'NCHW';

function view(t: Tensor, layout: SpatialLayout): { p: number; h: number; w: number; q: number } {
  if (t.shape.length !== 4) throw new Error(`expected a 4-D tensor, got shape ${describeShape(t.shape)}`);
  const [a, b, c, d] = t.shape;
  return layout === 'NHWC' ? { p: a, h: b, w: c, q: d } : { p: a * b, h: c, w: d, q: 1 };
}

function withHW(t: Tensor, layout: SpatialLayout, h: number, w: number): number[] {
  const s = [...t.shape];
  if (layout === 'NHWC') [s[1], s[2]] = [h, w];
  else [s[2], s[3]] = [h, w];
  return s;
}

/**
 * Rotate clockwise by k quarter turns (as the picture is shown, row 0 on top): ComfyUI's
 * `torch.rot90(x, k, dims=[W, H])` in ImageRotate and LatentRotate. A quarter turn swaps H and W.
 */
export function rotate90(t: Tensor, k: number, layout: SpatialLayout): Tensor {
  const turns = ((k % 4) + 4) % 4;
  if (turns === 0) return t;
  const { p, h, w, q } = view(t, layout);
  const [H, W] = turns === 2 ? [h, w] : [w, h];
  const out = new Float32Array(t.data.length);
  for (let n = 0; n < p; n++) {
    for (let i = 0; i < H; i++) {
      for (let j = 0; j < W; j++) {
        // Source pixel of output (i, j).
        let y: number;
        let x: number;
        if (turns === 1) [y, x] = [h - 1 - j, i];
        else if (turns === 2) [y, x] = [h - 1 - i, w - 1 - j];
        else [y, x] = [j, w - 1 - i];
        const from = ((n * h + y) * w + x) * q;
        out.set(t.data.subarray(from, from + q), ((n * H + i) * W + j) * q);
      }
    }
  }
  return { shape: withHW(t, layout, H, W), data: out };
}

/** Mirror top↔bottom (`vertical`, torch.flip over H) or left↔right (over W). */
export function flipSpatial(t: Tensor, vertical: boolean, layout: SpatialLayout): Tensor {
  const { p, h, w, q } = view(t, layout);
  const out = new Float32Array(t.data.length);
  for (let n = 0; n < p; n++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const sy = vertical ? h - 1 - y : y;
        const sx = vertical ? x : w - 1 - x;
        const from = ((n * h + sy) * w + sx) * q;
        out.set(t.data.subarray(from, from + q), ((n * h + y) * w + x) * q);
      }
    }
  }
  return { shape: [...t.shape], data: out };
}

/** Python's slice bounds `[start:stop]` on an axis of length n (negatives count from the end, then clipped). */
export function pySliceBounds(start: number, stop: number, n: number): [number, number] {
  const norm = (i: number): number => (i < 0 ? Math.max(0, i + n) : Math.min(i, n));
  const a = norm(start);
  return [a, Math.max(a, norm(stop))];
}

/** t[..., y0:y1, x0:x1, ...] over the spatial axes, with Python's slice rules. */
export function cropSpatial(t: Tensor, y0: number, y1: number, x0: number, x1: number, layout: SpatialLayout): Tensor {
  const { p, h, w, q } = view(t, layout);
  const [ya, yb] = pySliceBounds(y0, y1, h);
  const [xa, xb] = pySliceBounds(x0, x1, w);
  const H = yb - ya;
  const W = xb - xa;
  const out = new Float32Array(p * H * W * q);
  for (let n = 0; n < p; n++) {
    for (let y = 0; y < H; y++) {
      const from = ((n * h + ya + y) * w + xa) * q;
      out.set(t.data.subarray(from, from + W * q), (n * H + y) * W * q);
    }
  }
  return { shape: withHW(t, layout, H, W), data: out };
}
