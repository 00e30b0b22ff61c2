import type { Tensor } from '../core/tensor.ts';

/**
 * ComfyUI's `bislerp` (used to upscale latents): like bilinear, but each pair of neighbouring
 * C-vectors is blended by spherical interpolation of their directions with a linearly interpolated
 * length. Rows first, then columns, each a 1-D pass, as `comfy.utils.bislerp` does.
 */

const f32 = Math.fround;

interface LerpData {
  ratio: Float32Array;
  i1: Int32Array;
  i2: Int32Array;
}

/**
 * ComfyUI's generate_bilinear_data: bilinearly resize [0, 1, …, n-1] (and its shifted copy) to the new
 * length; the integer parts are the two source indices and the fraction of the first is the ratio.
 */
function lerpData(oldN: number, newN: number): LerpData {
  const scale = f32(oldN / newN);
  const ratio = new Float32Array(newN);
  const i1 = new Int32Array(newN);
  const i2 = new Int32Array(newN);
  const second = (i: number): number => (i === oldN - 1 ? oldN - 1 : i + 1);
  for (let o = 0; o < newN; o++) {
    let src = f32(f32(scale * f32(o + 0.5)) - 0.5);
    if (src < 0) src = 0;
    const a = Math.trunc(src);
    const b = a + (a < oldN - 1 ? 1 : 0);
    const l = Math.min(Math.max(f32(src - a), 0), 1);
    const l0 = f32(1 - l);
    const c1 = f32(f32(l0 * a) + f32(l * b));
    const c2 = f32(f32(l0 * second(a)) + f32(l * second(b)));
    ratio[o] = f32(c1 - Math.floor(c1));
    i1[o] = Math.trunc(c1);
    i2[o] = Math.trunc(c2);
  }
  return { ratio, i1, i2 };
}

/** ComfyUI's slerp of two C-vectors by ratio r (into `out`). */
function slerp(b1: Float64Array, b2: Float64Array, r: number, out: Float64Array): void {
  const c = b1.length;
  let n1 = 0;
  let n2 = 0;
  for (let k = 0; k < c; k++) {
    n1 += b1[k] * b1[k];
    n2 += b2[k] * b2[k];
  }
  n1 = Math.sqrt(n1);
  n2 = Math.sqrt(n2);
  // Zero-length vectors get a zero direction (ComfyUI sets the NaNs of 0/0 to 0).
  const inv1 = n1 === 0 ? 0 : 1 / n1;
  const inv2 = n2 === 0 ? 0 : 1 / n2;
  let dot = 0;
  for (let k = 0; k < c; k++) dot += b1[k] * inv1 * (b2[k] * inv2);
  if (dot > 1 - 1e-5) {
    for (let k = 0; k < c; k++) out[k] = b1[k];
    return;
  }
  if (dot < 1e-5 - 1) {
    for (let k = 0; k < c; k++) out[k] = b1[k] * (1 - r) + b2[k] * r;
    return;
  }
  const omega = Math.acos(dot);
  const so = Math.sin(omega);
  const w1 = Math.sin((1 - r) * omega) / so;
  const w2 = Math.sin(r * omega) / so;
  const len = n1 * (1 - r) + n2 * r;
  for (let k = 0; k < c; k++) out[k] = (w1 * b1[k] * inv1 + w2 * b2[k] * inv2) * len;
}

/** One slerp pass along width (`alongW`) or height of [N, C, H, W]. */
function pass(src: Float32Array, n: number, c: number, h: number, w: number, newLen: number, alongW: boolean): Float32Array {
  const oh = alongW ? h : newLen;
  const ow = alongW ? newLen : w;
  const d = lerpData(alongW ? w : h, newLen);
  const out = new Float32Array(n * c * oh * ow);
  const a = new Float64Array(c);
  const b = new Float64Array(c);
  const r = new Float64Array(c);
  for (let bi = 0; bi < n; bi++) {
    for (let y = 0; y < oh; y++) {
      for (let x = 0; x < ow; x++) {
        const o = alongW ? x : y;
        const p1 = alongW ? y * w + d.i1[o] : d.i1[o] * w + x;
        const p2 = alongW ? y * w + d.i2[o] : d.i2[o] * w + x;
        for (let k = 0; k < c; k++) {
          const plane = (bi * c + k) * h * w;
          a[k] = src[plane + p1];
          b[k] = src[plane + p2];
        }
        slerp(a, b, d.ratio[o], r);
        for (let k = 0; k < c; k++) out[((bi * c + k) * oh + y) * ow + x] = r[k];
      }
    }
  }
  return out;
}

/** Resize [N, C, H, W] to outH × outW with ComfyUI's bislerp. */
export function bislerp(t: Tensor, outH: number, outW: number): Tensor {
  const [n, c, h, w] = t.shape;
  const rows = pass(t.data, n, c, h, w, outW, true);
  const out = pass(rows, n, c, h, outW, outH, false);
  return { shape: [n, c, outH, outW], data: out };
}
