/**
 * The patch formulas written out as plain loops over indices (float64), from the ComfyUI/LyCORIS
 * definitions, sharing nothing with the implementation under test.
 */

export const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

/** a [m, k] · b [k, n]. */
export function mmRef(a: ArrayLike<number>, m: number, k: number, b: ArrayLike<number>, n: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[i * k + p] * b[p * n + j];
      c[i * n + j] = s;
    }
  return c;
}

/** ΔW[o, i, y, x] = Σ_j Σ_s up[o, j] · mid[j, s, y, x] · down[s, i]. */
export function loconTuckerRef(
  up: Float32Array,
  down: Float32Array,
  mid: Float32Array,
  out: number,
  inCh: number,
  r: number,
  kh: number,
  kw: number,
): Float64Array {
  const d = new Float64Array(out * inCh * kh * kw);
  for (let o = 0; o < out; o++)
    for (let i = 0; i < inCh; i++)
      for (let y = 0; y < kh; y++)
        for (let x = 0; x < kw; x++) {
          let s = 0;
          for (let j = 0; j < r; j++)
            for (let q = 0; q < r; q++) s += up[o * r + j] * mid[((j * r + q) * kh + y) * kw + x] * down[q * inCh + i];
          d[((o * inCh + i) * kh + y) * kw + x] = s;
        }
  return d;
}

/** W[p, r, k, l] = Σ_i Σ_j t[i, j, k, l] · b[j, r] · a[i, p]  (t [I, J, K, L], b [J, R], a [I, P]). */
export function tuckerRef(t: Float32Array, tShape: number[], b: Float32Array, R: number, a: Float32Array, P: number): Float64Array {
  const [I, J, K, L] = tShape;
  const w = new Float64Array(P * R * K * L);
  for (let p = 0; p < P; p++)
    for (let r = 0; r < R; r++)
      for (let k = 0; k < K; k++)
        for (let l = 0; l < L; l++) {
          let s = 0;
          for (let i = 0; i < I; i++) for (let j = 0; j < J; j++) s += t[((i * J + j) * K + k) * L + l] * b[j * R + r] * a[i * P + p];
          w[((p * R + r) * K + k) * L + l] = s;
        }
  return w;
}

/** Kronecker product of 2-D a [A0, A1] and b [B0, B1, …rest] (a counts as [A0, A1, 1, …]). */
export function kronRef(a: ArrayLike<number>, aShape: number[], b: ArrayLike<number>, bShape: number[]): Float64Array {
  const [A0, A1] = aShape;
  const [B0, B1] = bShape;
  const rest = numel(bShape.slice(2));
  const out = new Float64Array(A0 * B0 * A1 * B1 * rest);
  for (let i = 0; i < A0; i++)
    for (let j = 0; j < A1; j++)
      for (let k = 0; k < B0; k++)
        for (let l = 0; l < B1; l++)
          for (let z = 0; z < rest; z++) {
            out[((i * B0 + k) * (A1 * B1) + (j * B1 + l)) * rest + z] = a[i * A1 + j] * b[(k * B1 + l) * rest + z];
          }
  return out;
}

export function addScaled(base: Float32Array, delta: ArrayLike<number>, f: number): Float64Array {
  return Float64Array.from(base, (v, i) => v + f * delta[i]);
}

/** ComfyUI's weight_decompose: column norms over outputs and kernel positions, per input channel. */
export function doraRef(
  w: Float32Array,
  shape: number[],
  delta: ArrayLike<number>,
  scale: number,
  doraScale: Float32Array,
  strength: number,
): Float64Array {
  const [out, inCh] = shape;
  const sp = numel(shape) / (out * inCh);
  const calc = Float64Array.from(w, (v, i) => v + scale * delta[i]);
  const norms = new Float64Array(inCh);
  for (let o = 0; o < out; o++) for (let c = 0; c < inCh; c++) for (let k = 0; k < sp; k++) norms[c] += calc[(o * inCh + c) * sp + k] ** 2;
  const res = new Float64Array(w.length);
  for (let o = 0; o < out; o++)
    for (let c = 0; c < inCh; c++)
      for (let k = 0; k < sp; k++) {
        const f = (o * inCh + c) * sp + k;
        const v = (calc[f] * doraScale[c]) / Math.sqrt(norms[c]);
        res[f] = w[f] + strength * (v - w[f]);
      }
  return res;
}

/** max |got − want| / max |want|. */
export function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) return Number.POSITIVE_INFINITY;
  let d = 0;
  let m = 0;
  for (let i = 0; i < got.length; i++) {
    d = Math.max(d, Math.abs(got[i] - want[i]));
    m = Math.max(m, Math.abs(want[i]));
  }
  return d / (m || 1);
}
