import type { Tensor } from '../../engine/core/tensor.ts';
import type { CompactArch, EsrganArch } from '../../engine/models/upscale/detect.ts';

/**
 * Plain-loop forward passes of RRDBNet (spandrel's old-arch ESRGAN) and SRVGGNetCompact on one
 * [1, C, H, W] image, in float64, over weights under the graph's names. Written from the
 * architectures' definitions, not from the ONNX builder, so the tests hold one against the other.
 */

type Weights = (name: string) => Float32Array;

interface Map3 {
  c: number;
  h: number;
  w: number;
  d: Float64Array;
}

function conv3(x: Map3, wt: Float32Array, bias: Float32Array, out: number): Map3 {
  const { c, h, w } = x;
  const d = new Float64Array(out * h * w);
  for (let o = 0; o < out; o++)
    for (let y = 0; y < h; y++)
      for (let q = 0; q < w; q++) {
        let s = bias[o];
        for (let i = 0; i < c; i++)
          for (let ky = 0; ky < 3; ky++) {
            const yy = y + ky - 1;
            if (yy < 0 || yy >= h) continue;
            for (let kx = 0; kx < 3; kx++) {
              const xx = q + kx - 1;
              if (xx < 0 || xx >= w) continue;
              s += wt[((o * c + i) * 3 + ky) * 3 + kx] * x.d[(i * h + yy) * w + xx];
            }
          }
        d[(o * h + y) * w + q] = s;
      }
  return { c: out, h, w, d };
}

const conv = (x: Map3, W: Weights, key: string): Map3 => conv3(x, W(`${key}.weight`), W(`${key}.bias`), W(`${key}.bias`).length);
const lrelu = (x: Map3, slope: number): Map3 => ({ ...x, d: x.d.map((v) => (v >= 0 ? v : v * slope)) });
const add = (a: Map3, b: Map3, k = 1): Map3 => ({ ...a, d: a.d.map((v, i) => v * k + b.d[i]) });
const cat = (xs: Map3[]): Map3 => {
  const d = new Float64Array(xs.reduce((s, x) => s + x.d.length, 0));
  let o = 0;
  for (const x of xs) {
    d.set(x.d, o);
    o += x.d.length;
  }
  return { c: xs.reduce((s, x) => s + x.c, 0), h: xs[0].h, w: xs[0].w, d };
};

function nearest(x: Map3, s: number): Map3 {
  const h = x.h * s;
  const w = x.w * s;
  const d = new Float64Array(x.c * h * w);
  for (let c = 0; c < x.c; c++)
    for (let y = 0; y < h; y++)
      for (let q = 0; q < w; q++) d[(c * h + y) * w + q] = x.d[(c * x.h + Math.floor(y / s)) * x.w + Math.floor(q / s)];
  return { c: x.c, h, w, d };
}

const fromTensor = (t: Tensor): Map3 => ({ c: t.shape[1], h: t.shape[2], w: t.shape[3], d: Float64Array.from(t.data) });
const toTensor = (x: Map3): Tensor => ({ shape: [1, x.c, x.h, x.w], data: Float32Array.from(x.d) });

export function referenceRrdbNet(a: EsrganArch, W: Weights, input: Tensor): Tensor {
  const rdb = (key: string, x: Map3): Map3 => {
    const f = [x];
    for (let c = 1; c <= 4; c++) f.push(lrelu(conv(cat(f), W, `${key}.conv${c}.0`), 0.2));
    return add(conv(cat(f), W, `${key}.conv5.0`), x, 0.2);
  };
  const fea = conv(fromTensor(input), W, 'model.0');
  let t = fea;
  for (let b = 0; b < a.nb; b++) {
    const k = `model.1.sub.${b}`;
    t = add(rdb(`${k}.RDB3`, rdb(`${k}.RDB2`, rdb(`${k}.RDB1`, t))), t, 0.2);
  }
  let h = add(conv(t, W, `model.1.sub.${a.nb}`), fea);
  for (let u = 1; u <= a.upsamples; u++) h = lrelu(conv(nearest(h, 2), W, `model.${3 * u}`), 0.2);
  h = lrelu(conv(h, W, `model.${3 * a.upsamples + 2}`), 0.2);
  return toTensor(conv(h, W, `model.${3 * a.upsamples + 4}`));
}

export function referenceCompact(a: CompactArch, W: Weights, input: Tensor): Tensor {
  const x = fromTensor(input);
  const prelu = (m: Map3, key: string): Map3 => {
    const s = W(key);
    return { ...m, d: m.d.map((v, i) => (v >= 0 ? v : v * s[Math.floor(i / (m.h * m.w))])) };
  };
  let h = prelu(conv(x, W, 'body.0'), 'body.1.weight');
  for (let k = 0; k < a.numConv; k++) h = prelu(conv(h, W, `body.${2 * k + 2}`), `body.${2 * k + 3}.weight`);
  h = conv(h, W, `body.${2 * a.numConv + 2}`);
  // torch.pixel_shuffle: channel c·r² + i·r + j → pixel (y·r + i, x·r + j) of channel c.
  const r = a.scale;
  const out = new Float64Array(a.outNc * h.h * r * h.w * r);
  const H = h.h * r;
  const Wd = h.w * r;
  for (let c = 0; c < a.outNc; c++)
    for (let i = 0; i < r; i++)
      for (let j = 0; j < r; j++)
        for (let y = 0; y < h.h; y++)
          for (let q = 0; q < h.w; q++) out[(c * H + y * r + i) * Wd + q * r + j] = h.d[((c * r * r + i * r + j) * h.h + y) * h.w + q];
  return toTensor(add({ c: a.outNc, h: H, w: Wd, d: out }, nearest(x, r)));
}
