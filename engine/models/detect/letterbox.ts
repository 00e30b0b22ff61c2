import { pyRound } from '../../core/py-round.ts';
import type { ImageTensor } from '../../core/tensor.ts';
import { cvRound } from '../../image/preprocess/cv-resize.ts';

/**
 * ultralytics' LetterBox as its predictor applies it: resize keeping the aspect (cv2 INTER_LINEAR on
 * the 8-bit image), then pad with grey 114 centred, the odd pixel of an odd padding going to the
 * bottom/right through its ±0.1 rounding. With `auto` (a PyTorch model, or an ONNX export with
 * dynamic axes) the padding only reaches the next multiple of the stride.
 */

export interface LetterboxGeometry {
  /** Scale from the image to the model input (ultralytics' `r`). */
  readonly ratio: number;
  /** Size of the resized image inside the padding. */
  readonly resizedW: number;
  readonly resizedH: number;
  readonly top: number;
  readonly bottom: number;
  readonly left: number;
  readonly right: number;
  /** Size of the model input (resized + padding). */
  readonly outW: number;
  readonly outH: number;
}

export interface LetterboxOptions {
  /** Target [height, width]. */
  readonly size: readonly [number, number];
  readonly auto: boolean;
  readonly stride: number;
  /** ultralytics' predictor enlarges small images (scaleup=True); validation does not. */
  readonly scaleup?: boolean;
}

export function letterboxGeometry(h: number, w: number, o: LetterboxOptions): LetterboxGeometry {
  const [nh, nw] = o.size;
  let r = Math.min(nh / h, nw / w);
  if (o.scaleup === false) r = Math.min(r, 1);
  const resizedW = pyRound(w * r);
  const resizedH = pyRound(h * r);
  let dw = nw - resizedW;
  let dh = nh - resizedH;
  if (o.auto) {
    // numpy's mod: the result takes the divisor's sign
    dw = ((dw % o.stride) + o.stride) % o.stride;
    dh = ((dh % o.stride) + o.stride) % o.stride;
  }
  dw /= 2;
  dh /= 2;
  const top = pyRound(dh - 0.1);
  const bottom = pyRound(dh + 0.1);
  const left = pyRound(dw - 0.1);
  const right = pyRound(dw + 0.1);
  return { ratio: r, resizedW, resizedH, top, bottom, left, right, outW: resizedW + left + right, outH: resizedH + top + bottom };
}

/**
 * The Impact Pack hands YOLO a PIL image made by `np.clip(255 * image, 0, 255).astype(uint8)`:
 * truncation, not rounding. ultralytics converts other modes to RGB: alpha is dropped, grey repeated.
 */
export function imageToU8(image: ImageTensor): { data: Uint8Array; h: number; w: number } {
  const [, h, w, c] = image.shape;
  if (c !== 1 && c !== 3 && c !== 4) throw new Error(`the detector needs an RGB image, got ${c} channels`);
  const src = image.data;
  const data = new Uint8Array(h * w * 3);
  for (let p = 0; p < h * w; p++) {
    for (let k = 0; k < 3; k++) {
      const v = Math.fround(255 * src[p * c + (c === 1 ? 0 : k)]);
      data[p * 3 + k] = v <= 0 || Number.isNaN(v) ? 0 : v >= 255 ? 255 : Math.trunc(v);
    }
  }
  return { data, h, w };
}

const COEF_BITS = 11;
const COEF_SCALE = 1 << COEF_BITS;
/** OpenCV's SSE vertical pass handles this many bytes per step; the row's tail takes the scalar path. */
const VEC = 16;

/** Source offsets and 11-bit weights of OpenCV's resizeGeneric for INTER_LINEAR (float32 positions). */
function linearTable(dst: number, src: number): { i0: Int32Array; i1: Int32Array; c0: Int32Array; c1: Int32Array } {
  const scale = 1 / (dst / src);
  const i0 = new Int32Array(dst);
  const i1 = new Int32Array(dst);
  const c0 = new Int32Array(dst);
  const c1 = new Int32Array(dst);
  const f = Math.fround;
  for (let d = 0; d < dst; d++) {
    let fx = f((d + 0.5) * scale - 0.5);
    let s = Math.floor(fx);
    fx = f(fx - s);
    if (s < 0) {
      fx = 0;
      s = 0;
    }
    if (s >= src - 1) {
      fx = 0;
      s = src - 1;
    }
    i0[d] = s;
    i1[d] = Math.min(s + 1, src - 1);
    c1[d] = cvRound(f(fx * COEF_SCALE));
    c0[d] = cvRound(f(f(1 - fx) * COEF_SCALE));
  }
  return { i0, i1, c0, c1 };
}

/**
 * cv2.resize(INTER_LINEAR) of an 8-bit HWC image with OpenCV 4's fixed-point arithmetic (11-bit
 * weights, the vector pass's shifts on all but a row's last bytes). Matches cv2 4.6 to ±1 on under 1%
 * of the pixels when enlarging (tests/detect/letterbox.test.ts); the detector's scores do not notice.
 */
export function resizeLinearU8(src: Uint8Array, h: number, w: number, c: number, dh: number, dw: number): Uint8Array {
  const tx = linearTable(dw, w);
  const ty = linearTable(dh, h);
  const rowLen = dw * c;
  // per output byte: its two source bytes' offsets within a row and their weights
  const o0 = new Int32Array(rowLen);
  const o1 = new Int32Array(rowLen);
  const w0 = new Int32Array(rowLen);
  const w1 = new Int32Array(rowLen);
  for (let x = 0; x < dw; x++) {
    for (let k = 0; k < c; k++) {
      o0[x * c + k] = tx.i0[x] * c + k;
      o1[x * c + k] = tx.i1[x] * c + k;
      w0[x * c + k] = tx.c0[x];
      w1[x * c + k] = tx.c1[x];
    }
  }
  const rows = [new Int32Array(rowLen), new Int32Array(rowLen)];
  const rowOf = [-1, -1];
  const hrow = (y: number): Int32Array => {
    const slot = rowOf[0] === y ? 0 : rowOf[1] === y ? 1 : -1;
    if (slot >= 0) return rows[slot];
    // replace the row not needed by the current output row's other source
    const use = rowOf[0] === ty.i0[cur] || rowOf[0] === ty.i1[cur] ? 1 : 0;
    const out = rows[use];
    rowOf[use] = y;
    const base = y * w * c;
    for (let i = 0; i < rowLen; i++) out[i] = src[base + o0[i]] * w0[i] + src[base + o1[i]] * w1[i];
    return out;
  };
  let cur = 0;
  const out = new Uint8Array(dh * rowLen);
  const nv = Math.floor(rowLen / VEC) * VEC;
  for (let y = 0; y < dh; y++) {
    cur = y;
    const r0 = hrow(ty.i0[y]);
    const r1 = hrow(ty.i1[y]);
    const b0 = ty.c0[y];
    const b1 = ty.c1[y];
    const o = y * rowLen;
    for (let x = 0; x < nv; x++) {
      const v = ((((r0[x] >> 4) * b0) >> 16) + (((r1[x] >> 4) * b1) >> 16) + 2) >> 2;
      out[o + x] = v > 255 ? 255 : v;
    }
    for (let x = nv; x < rowLen; x++) {
      const v = Math.floor((r0[x] * b0 + r1[x] * b1 + (1 << 21)) / (1 << 22));
      out[o + x] = v > 255 ? 255 : v;
    }
  }
  return out;
}

/** The model's input: the letterboxed image as float32 NCHW RGB in 0..1, and the geometry used. */
export function letterboxImage(image: ImageTensor, o: LetterboxOptions): { input: Float32Array; geo: LetterboxGeometry } {
  const { data, h, w } = imageToU8(image);
  const geo = letterboxGeometry(h, w, o);
  const resized = geo.resizedW === w && geo.resizedH === h ? data : resizeLinearU8(data, h, w, 3, geo.resizedH, geo.resizedW);
  const { outH, outW } = geo;
  const plane = outH * outW;
  const input = new Float32Array(3 * plane).fill(114 / 255);
  for (let y = 0; y < geo.resizedH; y++) {
    for (let x = 0; x < geo.resizedW; x++) {
      const s = (y * geo.resizedW + x) * 3;
      const d = (y + geo.top) * outW + x + geo.left;
      input[d] = resized[s] / 255;
      input[plane + d] = resized[s + 1] / 255;
      input[2 * plane + d] = resized[s + 2] / 255;
    }
  }
  return { input, geo };
}
