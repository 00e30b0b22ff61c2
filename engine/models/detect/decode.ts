import { pyRound } from '../../core/py-round.ts';

/**
 * ultralytics' post-processing of a YOLOv8/YOLO11 head (`utils/ops.py`): candidates whose best class
 * score exceeds the confidence, xywh → xyxy, best class only, class-aware NMS (boxes shifted apart
 * by class × 7680, a box suppressed when its IoU with a kept one exceeds the threshold), at most
 * `maxDet` kept in descending confidence; then boxes back to the image (`scale_boxes`) and masks from
 * the prototypes (`process_mask`). Arithmetic in float32 where PyTorch's is.
 */

const f = Math.fround;

export interface RawDetection {
  /** x1, y1, x2, y2 in model-input pixels, then (after scaleBoxes) in image pixels. */
  box: [number, number, number, number];
  conf: number;
  cls: number;
  /** Mask coefficients (segmentation heads). */
  coeffs?: Float32Array;
}

export interface NmsOptions {
  readonly conf: number;
  readonly iou: number;
  readonly maxDet?: number;
  readonly maxNms?: number;
  readonly maxWh?: number;
}

/**
 * Decodes `output0` [1, 4 + nc + nm, N] (channels first, as the exports lay it out) and runs NMS.
 * Returns the kept detections in descending confidence (ties keep anchor order).
 */
export function decodeYolo(out: Float32Array, channels: number, anchors: number, nc: number, o: NmsOptions): RawDetection[] {
  const nm = channels - 4 - nc;
  if (nm < 0) throw new Error(`output0 has ${channels} channels, fewer than 4 box values + ${nc} classes`);
  if (out.length < channels * anchors) throw new Error(`output0 holds ${out.length} values, expected ${channels * anchors}`);
  const at = (ch: number, i: number): number => out[ch * anchors + i];
  let cands: RawDetection[] = [];
  for (let i = 0; i < anchors; i++) {
    let best = -Infinity;
    let cls = 0;
    for (let k = 0; k < nc; k++) {
      const s = at(4 + k, i);
      if (s > best) {
        best = s;
        cls = k;
      }
    }
    if (!(best > o.conf)) continue;
    const cx = at(0, i);
    const cy = at(1, i);
    const hw = f(at(2, i) / 2);
    const hh = f(at(3, i) / 2);
    const det: RawDetection = { box: [f(cx - hw), f(cy - hh), f(cx + hw), f(cy + hh)], conf: best, cls };
    if (nm > 0) {
      const c = new Float32Array(nm);
      for (let k = 0; k < nm; k++) c[k] = at(4 + nc + k, i);
      det.coeffs = c;
    }
    cands.push(det);
  }
  const byConf = (a: RawDetection, b: RawDetection): number => b.conf - a.conf;
  const maxNms = o.maxNms ?? 30000;
  if (cands.length > maxNms) cands = [...cands].sort(byConf).slice(0, maxNms);
  return nms(cands, o.iou, o.maxWh ?? 7680).slice(0, o.maxDet ?? 300);
}

/**
 * An end-to-end head (YOLOv10, YOLO26, `nms=True` exports): output0 [1, N, 6 + nm] rows of x1, y1, x2,
 * y2, confidence, class (then mask coefficients), already suppressed. ultralytics keeps the rows whose
 * confidence exceeds the threshold, in the model's order, at most `maxDet`.
 */
export function decodeEnd2End(out: Float32Array, rows: number, channels: number, o: Pick<NmsOptions, 'conf' | 'maxDet'>): RawDetection[] {
  if (out.length < rows * channels) throw new Error(`output0 holds ${out.length} values, expected ${rows * channels}`);
  const nm = channels - 6;
  const kept: RawDetection[] = [];
  for (let i = 0; i < rows && kept.length < (o.maxDet ?? 300); i++) {
    const r = out.subarray(i * channels, (i + 1) * channels);
    if (!(r[4] > o.conf)) continue;
    const det: RawDetection = { box: [r[0], r[1], r[2], r[3]], conf: r[4], cls: Math.round(r[5]) };
    if (nm > 0) det.coeffs = Float32Array.from(r.subarray(6));
    kept.push(det);
  }
  return kept;
}

/** torchvision.ops.nms on boxes offset by class (class-aware); keeps IoU ≤ threshold. */
export function nms(dets: readonly RawDetection[], iouThreshold: number, maxWh = 7680): RawDetection[] {
  const order = dets.map((_, i) => i).sort((a, b) => dets[b].conf - dets[a].conf || a - b);
  const shifted = dets.map((d) => {
    const c = f(d.cls * maxWh);
    return d.box.map((v) => f(v + c));
  });
  const area = shifted.map(([x1, y1, x2, y2]) => f(f(x2 - x1) * f(y2 - y1)));
  const suppressed = new Uint8Array(dets.length);
  const keep: RawDetection[] = [];
  for (let oi = 0; oi < order.length; oi++) {
    const i = order[oi];
    if (suppressed[i]) continue;
    keep.push(dets[i]);
    const [ax1, ay1, ax2, ay2] = shifted[i];
    for (let oj = oi + 1; oj < order.length; oj++) {
      const j = order[oj];
      if (suppressed[j]) continue;
      const [bx1, by1, bx2, by2] = shifted[j];
      const w = Math.max(0, f(Math.min(ax2, bx2) - Math.max(ax1, bx1)));
      const h = Math.max(0, f(Math.min(ay2, by2) - Math.max(ay1, by1)));
      const inter = f(w * h);
      const iou = f(inter / f(f(area[i] + area[j]) - inter));
      if (iou > iouThreshold) suppressed[j] = 1;
    }
  }
  return keep;
}

/** ultralytics' scale_boxes: from the letterboxed input [h1, w1] to the image [h0, w0], clipped. */
export function scaleBoxes(box: readonly number[], input: readonly [number, number], image: readonly [number, number]): [number, number, number, number] {
  const [h1, w1] = input;
  const [h0, w0] = image;
  const gain = Math.min(h1 / h0, w1 / w0);
  const padX = pyRound((w1 - w0 * gain) / 2 - 0.1);
  const padY = pyRound((h1 - h0 * gain) / 2 - 0.1);
  const g = f(gain);
  const clip = (v: number, hi: number): number => Math.min(Math.max(v, 0), hi);
  return [
    clip(f(f(box[0] - padX) / g), w0),
    clip(f(f(box[1] - padY) / g), h0),
    clip(f(f(box[2] - padX) / g), w0),
    clip(f(f(box[3] - padY) / g), h0),
  ];
}

/**
 * PyTorch's F.interpolate(mode='bilinear', align_corners=False) of one [h, w] plane to [oh, ow]
 * (source positions clamped at 0, as its area-pixel mapping does).
 */
export function bilinearResize(src: Float32Array, h: number, w: number, oh: number, ow: number): Float32Array {
  const out = new Float32Array(oh * ow);
  const sy = h / oh;
  const sx = w / ow;
  const xs0 = new Int32Array(ow);
  const xs1 = new Int32Array(ow);
  const lx = new Float32Array(ow);
  for (let x = 0; x < ow; x++) {
    const fx = Math.max(f(f(sx * f(x + 0.5)) - 0.5), 0);
    const x0 = Math.floor(fx);
    xs0[x] = x0;
    xs1[x] = x0 < w - 1 ? x0 + 1 : x0;
    lx[x] = f(fx - x0);
  }
  for (let y = 0; y < oh; y++) {
    const fy = Math.max(f(f(sy * f(y + 0.5)) - 0.5), 0);
    const y0 = Math.floor(fy);
    const y1 = y0 < h - 1 ? y0 + 1 : y0;
    const ly = f(fy - y0);
    const hy = f(1 - ly);
    for (let x = 0; x < ow; x++) {
      const a = src[y0 * w + xs0[x]];
      const b = src[y0 * w + xs1[x]];
      const c = src[y1 * w + xs0[x]];
      const d = src[y1 * w + xs1[x]];
      const l = lx[x];
      const hx = f(1 - l);
      out[y * ow + x] = f(f(hy * f(f(hx * a) + f(l * b))) + f(ly * f(f(hx * c) + f(l * d))));
    }
  }
  return out;
}

/**
 * ultralytics' process_mask(upsample=True): coefficients × prototypes, zeroed outside the box (scaled
 * to the prototype grid), upsampled bilinearly to the model input, then > 0. Returns 0/1 at [ih, iw].
 */
export function processMask(
  protos: Float32Array,
  nm: number,
  mh: number,
  mw: number,
  det: RawDetection,
  input: readonly [number, number],
): Float32Array {
  const [ih, iw] = input;
  const coeffs = det.coeffs;
  if (!coeffs || coeffs.length !== nm) throw new Error(`the detection has ${coeffs?.length ?? 0} mask coefficients, the prototypes ${nm}`);
  const wr = mw / iw;
  const hr = mh / ih;
  const x1 = f(det.box[0] * wr);
  const x2 = f(det.box[2] * wr);
  const y1 = f(det.box[1] * hr);
  const y2 = f(det.box[3] * hr);
  const plane = mh * mw;
  const m = new Float32Array(plane);
  for (let y = 0; y < mh; y++) {
    if (!(y >= y1 && y < y2)) continue;
    for (let x = 0; x < mw; x++) {
      if (!(x >= x1 && x < x2)) continue;
      let s = 0;
      for (let k = 0; k < nm; k++) s += coeffs[k] * protos[k * plane + y * mw + x];
      m[y * mw + x] = s;
    }
  }
  const up = bilinearResize(m, mh, mw, ih, iw);
  for (let i = 0; i < up.length; i++) up[i] = up[i] > 0 ? 1 : 0;
  return up;
}

/**
 * A mask at the letterboxed input size back to the image: the padding cut off (ultralytics'
 * scale_masks geometry) and the rest resized bilinearly to [h0, w0], as the Impact Pack resizes the
 * model's masks (so edges come out soft).
 */
export function maskToImage(mask: Float32Array, input: readonly [number, number], image: readonly [number, number]): Float32Array {
  const [mh, mw] = input;
  const [h0, w0] = image;
  const gain = Math.min(mh / h0, mw / w0);
  const padW = (mw - w0 * gain) / 2;
  const padH = (mh - h0 * gain) / 2;
  const top = Math.trunc(padH);
  const left = Math.trunc(padW);
  const bottom = Math.trunc(mh - padH);
  const right = Math.trunc(mw - padW);
  const ch = bottom - top;
  const cw = right - left;
  const crop = new Float32Array(ch * cw);
  for (let y = 0; y < ch; y++) crop.set(mask.subarray((y + top) * mw + left, (y + top) * mw + left + cw), y * cw);
  return ch === h0 && cw === w0 ? crop : bilinearResize(crop, ch, cw, h0, w0);
}
