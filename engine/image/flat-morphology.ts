import { describeShape, type Tensor } from '../core/tensor.ts';

/**
 * ComfyUI's Morphology on [B, C, H, W]: `F.max_pool2d(x, k, stride=1, padding=k // 2)` for dilation
 * and its negative of −x for erosion (kornia.morphology with a flat kernel before; same values for
 * odd k). Output i takes the window i − ⌊k/2⌋ … i − ⌊k/2⌋ + k − 1 clipped to the input (the padding
 * is −∞), so an even k gives one more row and column than the input, as torch does. A flat square
 * window is separable: rows, then columns.
 */

/**
 * Max or min over [i − before, i − before + w − 1] ∩ [0, n) for i < m along one strided line (out
 * strided by `outStride`), van Herk/Gil-Werman in O(n).
 */
function lineExtreme(
  src: Float32Array,
  start: number,
  stride: number,
  n: number,
  before: number,
  w: number,
  max: boolean,
  out: Float32Array,
  outStart: number,
  outStride: number,
  m: number,
): void {
  const id = max ? -Infinity : Infinity;
  const pick = max ? Math.max : Math.min;
  // Padded index j covers source index j − before; the window of output i is padded j = i … i + w − 1.
  const len = Math.ceil((m + w - 1) / w) * w;
  const at = (j: number): number => (j >= before && j - before < n ? src[start + (j - before) * stride] : id);
  const g = new Float32Array(len);
  const h = new Float32Array(len);
  for (let j = 0; j < len; j++) g[j] = j % w === 0 ? at(j) : pick(g[j - 1], at(j));
  for (let j = len - 1; j >= 0; j--) h[j] = j % w === w - 1 || j === len - 1 ? at(j) : pick(h[j + 1], at(j));
  for (let i = 0; i < m; i++) out[outStart + i * outStride] = pick(h[i], g[i + w - 1]);
}

function flat(t: Tensor, k: number, max: boolean): Tensor {
  if (t.shape.length !== 4) throw new Error(`morphology expects [B, C, H, W], got ${describeShape(t.shape)}`);
  if (!Number.isInteger(k) || k < 1) throw new Error(`kernel_size must be a positive integer, got ${k}`);
  const [b, c, hh, ww] = t.shape;
  const before = Math.floor(k / 2);
  // max_pool2d's output size: n + 2·⌊k/2⌋ − k + 1.
  const H = hh + 2 * before - k + 1;
  const W = ww + 2 * before - k + 1;
  const tmp = new Float32Array(b * c * hh * W);
  const out = new Float32Array(b * c * H * W);
  for (let p = 0; p < b * c; p++) {
    for (let y = 0; y < hh; y++) lineExtreme(t.data, p * hh * ww + y * ww, 1, ww, before, k, max, tmp, p * hh * W + y * W, 1, W);
    for (let x = 0; x < W; x++) lineExtreme(tmp, p * hh * W + x, W, hh, before, k, max, out, p * H * W + x, W, H);
  }
  return { shape: [b, c, H, W], data: out };
}

export const dilateFlat = (t: Tensor, k: number): Tensor => flat(t, k, true);
export const erodeFlat = (t: Tensor, k: number): Tensor => flat(t, k, false);

export const MORPHOLOGY_OPERATIONS = ['erode', 'dilate', 'open', 'close', 'gradient', 'bottom_hat', 'top_hat'] as const;
export type MorphologyOperation = (typeof MORPHOLOGY_OPERATIONS)[number];

function zip(a: Tensor, b: Tensor, f: (x: number, y: number) => number): Tensor {
  if (a.shape.some((d, i) => d !== b.shape[i]))
    throw new Error(
      `morphology: sizes ${describeShape(a.shape)} and ${describeShape(b.shape)} differ (an even kernel_size grows each pass by one pixel, as in ComfyUI, where this fails too)`,
    );
  const out = new Float32Array(a.data.length);
  for (let i = 0; i < out.length; i++) out[i] = f(a.data[i], b.data[i]);
  return { shape: [...a.shape], data: out };
}

/** Opening, closing, gradient, top_hat and bottom_hat composed from the two flat operations as ComfyUI does. */
export function morphology(t: Tensor, op: MorphologyOperation, k: number): Tensor {
  switch (op) {
    case 'erode':
      return erodeFlat(t, k);
    case 'dilate':
      return dilateFlat(t, k);
    case 'open':
      return dilateFlat(erodeFlat(t, k), k);
    case 'close':
      return erodeFlat(dilateFlat(t, k), k);
    case 'gradient':
      return zip(dilateFlat(t, k), erodeFlat(t, k), (d, e) => d - e);
    case 'top_hat':
      return zip(t, dilateFlat(erodeFlat(t, k), k), (x, o) => x - o);
    case 'bottom_hat':
      return zip(erodeFlat(dilateFlat(t, k), k), t, (c, x) => c - x);
    default:
      throw new Error(`Invalid operation ${String(op)} for morphology. Must be one of ${MORPHOLOGY_OPERATIONS.join(', ')}`);
  }
}
