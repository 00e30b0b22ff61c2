import * as ort from 'onnxruntime-node';
import { tensor } from '../../core/tensor.ts';
import { removePad, resizeImageWithPad } from '../../image/preprocess/aux-resize.ts';
import { cvResizeCubicF64 } from '../../image/preprocess/cv-resize.ts';
import { hwc3, type U8Mat } from '../../image/preprocess/mat.ts';
import { resizeNCHW } from '../../image/resize.ts';

/**
 * The depth preprocessors of comfyui_controlnet_aux around an ONNX export of their networks (the first
 * input takes the normalised RGB NCHW image, the first output is the relative depth [1, h, w] or
 * [1, 1, h, w]):
 * - Depth Anything V2: the image (RGB / 255, float64) to the lower bound of 518 on both sides in
 *   multiples of 14 with INTER_CUBIC, ImageNet normalisation; depth back to the input size (bilinear,
 *   corners aligned), min–max to 0..255 (truncated), then resized with pad to `resolution`.
 * - MiDaS (DPT-Hybrid, as the package now runs it through transformers): the padded image at
 *   `resolution` to 384×384, (x / 255 − 0.5) / 0.5; depth back to the padded size (torch bicubic),
 *   min–max, ×255 truncated, cropped. The processor's PIL bicubic is done with OpenCV's cubic here.
 */

export type FileSession = (fn: (s: ort.InferenceSession) => Promise<ort.InferenceSession.OnnxValueMapType>) => Promise<ort.InferenceSession.OnnxValueMapType>;

async function runDepth(session: FileSession, data: Float32Array, h: number, w: number, file: string): Promise<{ data: Float32Array; h: number; w: number }> {
  const out = await session(async (s) => s.run({ [s.inputNames[0]]: new ort.Tensor('float32', data, [1, 3, h, w]) }));
  const t = Object.values(out)[0] as ort.Tensor | undefined;
  if (!t || t.type !== 'float32') throw new Error(`${file}: expected a float32 depth output`);
  const dims = t.dims.filter((d, i) => !(d === 1 && i < t.dims.length - 2));
  if (dims.length !== 2) throw new Error(`${file}: depth output has shape [${t.dims.join(', ')}], expected [1, h, w]`);
  return { data: t.data as Float32Array, h: dims[0], w: dims[1] };
}

/** numpy's round-half-even to a multiple. */
function multipleOf(x: number, m: number, min: number): number {
  const q = x / m;
  const r = Math.round(q);
  let y = (r - q === 0.5 && r % 2 !== 0 ? r - 1 : r) * m;
  if (y < min) y = Math.ceil(q) * m;
  return y;
}

/** min–max to 0..255, truncated to uint8, as one grey channel repeated. */
function normalizeU8(d: Float32Array | Float64Array, h: number, w: number): U8Mat {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of d) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const out = new Uint8Array(h * w);
  const span = hi - lo;
  for (let i = 0; i < out.length; i++) {
    const v = span > 0 ? ((d[i] - lo) / span) * 255 : 0;
    out[i] = v >= 255 ? 255 : v > 0 ? Math.trunc(v) : 0;
  }
  return hwc3({ h, w, c: 1, data: out });
}

/** Bilinear with align_corners=True (F.interpolate) of one plane. */
function bilinearAligned(src: Float32Array, sh: number, sw: number, h: number, w: number): Float64Array {
  const out = new Float64Array(h * w);
  const ry = h > 1 ? (sh - 1) / (h - 1) : 0;
  const rx = w > 1 ? (sw - 1) / (w - 1) : 0;
  for (let y = 0; y < h; y++) {
    const fy = y * ry;
    const y0 = Math.min(Math.floor(fy), sh - 1);
    const y1 = Math.min(y0 + 1, sh - 1);
    const ly = fy - y0;
    for (let x = 0; x < w; x++) {
      const fx = x * rx;
      const x0 = Math.min(Math.floor(fx), sw - 1);
      const x1 = Math.min(x0 + 1, sw - 1);
      const lx = fx - x0;
      const top = src[y0 * sw + x0] * (1 - lx) + src[y0 * sw + x1] * lx;
      const bot = src[y1 * sw + x0] * (1 - lx) + src[y1 * sw + x1] * lx;
      out[y * w + x] = top * (1 - ly) + bot * ly;
    }
  }
  return out;
}

/** Depth Anything V2's network input for an RGB image: [3, h, w] float32 with h, w the lower bound of 518 in multiples of 14. */
export function depthAnythingInput(img: U8Mat): { data: Float32Array; h: number; w: number } {
  const { h, w } = img;
  const scale = Math.max(518 / h, 518 / w);
  const nh = multipleOf(scale * h, 14, 518);
  const nw = multipleOf(scale * w, 14, 518);
  const f = cvResizeCubicF64({ h, w, c: 3, data: Float64Array.from(img.data, (v) => v / 255) }, nw, nh);
  const mean = [0.485, 0.456, 0.406];
  const std = [0.229, 0.224, 0.225];
  const S = nh * nw;
  const x = new Float32Array(3 * S);
  for (let i = 0; i < S; i++) for (let c = 0; c < 3; c++) x[c * S + i] = (f.data[i * 3 + c] - mean[c]) / std[c];
  return { data: x, h: nh, w: nw };
}

/** A relative depth plane back at the image size (bilinear, corners aligned), min–max to 0..255 truncated, grey RGB. */
export function depthToImage(d: Float32Array, dh: number, dw: number, h: number, w: number): U8Mat {
  return normalizeU8(bilinearAligned(d, dh, dw, h, w), h, w);
}

export async function depthAnythingV2(session: FileSession, file: string, input: U8Mat, resolution: number): Promise<U8Mat> {
  const img = hwc3(input);
  const x = depthAnythingInput(img);
  const d = await runDepth(session, x.data, x.h, x.w, file);
  const p = resizeImageWithPad(depthToImage(d.data, d.h, d.w, img.h, img.w), resolution);
  return removePad(p, p.image);
}

export async function midasDepth(session: FileSession, file: string, input: U8Mat, resolution: number): Promise<U8Mat> {
  const p = resizeImageWithPad(input, resolution);
  const { h, w } = p.image;
  const r = cvResizeCubicF64({ h, w, c: 3, data: Float64Array.from(p.image.data) }, 384, 384);
  const S = 384 * 384;
  const x = new Float32Array(3 * S);
  for (let i = 0; i < S; i++) for (let c = 0; c < 3; c++) x[c * S + i] = (Math.min(255, Math.max(0, r.data[i * 3 + c])) / 255 - 0.5) / 0.5;
  const d = await runDepth(session, x, 384, 384, file);
  const up = resizeNCHW(tensor([1, 1, d.h, d.w], d.data), h, w, 'bicubic');
  return removePad(p, normalizeU8(up.data, h, w));
}
