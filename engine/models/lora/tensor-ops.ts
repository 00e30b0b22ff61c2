import { transpose2d as transposeMatrix } from '../../onnx/nn.ts';

/**
 * The few tensor operations the patch math needs beyond a matrix product, on row-major float32
 * arrays. The products themselves go through a MatMul so the large ones can run in ORT.
 */

/** a:[m,k] row-major times b:[k,n] → [m,n]. */
export type MatMul = (a: Float32Array, m: number, k: number, b: Float32Array, n: number) => Promise<Float32Array>;

/** Columns of b per block: 32 rows × 1024 floats = 128 KiB of b stay in L2 while every row of a passes. */
const COL_BLOCK = 1024;
const K_BLOCK = 64;

/** Plain TypeScript, i-k-j order so the innermost loop runs along contiguous rows of b and c. */
export const jsMatMul: MatMul = async (a, m, k, b, n) => jsMatMulSync(a, m, k, b, n);

export function jsMatMulSync(a: Float32Array, m: number, k: number, b: Float32Array, n: number): Float32Array {
  if (a.length !== m * k) throw new Error(`matmul: a has ${a.length} values, [${m}, ${k}] needs ${m * k}`);
  if (b.length !== k * n) throw new Error(`matmul: b has ${b.length} values, [${k}, ${n}] needs ${k * n}`);
  const c = new Float32Array(m * n);
  for (let j0 = 0; j0 < n; j0 += COL_BLOCK) {
    const j1 = Math.min(n, j0 + COL_BLOCK);
    for (let p0 = 0; p0 < k; p0 += K_BLOCK) {
      const p1 = Math.min(k, p0 + K_BLOCK);
      for (let i = 0; i < m; i++) {
        const ci = i * n;
        const ai = i * k;
        for (let p = p0; p < p1; p++) {
          const av = a[ai + p];
          if (av === 0) continue;
          const bp = p * n;
          for (let j = j0; j < j1; j++) c[ci + j] += av * b[bp + j];
        }
      }
    }
  }
  return c;
}

/** [r, c] → [c, r] (the graph builder's transpose, in this file's argument style). */
export function transpose2d(x: Float32Array, rows: number, cols: number): Float32Array {
  return transposeMatrix(x, [rows, cols]);
}

/**
 * Swaps the first two axes of [d0, d1, rest…] (rest flattened to `inner`): the `transpose(0, 1)`
 * that ComfyUI's conv formulas use.
 */
export function swap01(x: Float32Array, d0: number, d1: number, inner: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < d0; i++) {
    for (let j = 0; j < d1; j++) {
      const src = (i * d1 + j) * inner;
      const dst = (j * d0 + i) * inner;
      for (let t = 0; t < inner; t++) out[dst + t] = x[src + t];
    }
  }
  return out;
}

/** torch.kron: shapes padded with leading 1s to equal rank; out[i·|b| + j] = a[i]·b[j] per axis. */
export function kron(a: Float32Array, aShape: readonly number[], b: Float32Array, bShape: readonly number[]): { data: Float32Array; shape: number[] } {
  const n = Math.max(aShape.length, bShape.length);
  const pa = [...Array<number>(n - aShape.length).fill(1), ...aShape];
  const pb = [...Array<number>(n - bShape.length).fill(1), ...bShape];
  const shape = pa.map((d, i) => d * pb[i]);
  const stride = new Array<number>(n);
  stride[n - 1] = 1;
  for (let d = n - 2; d >= 0; d--) stride[d] = stride[d + 1] * shape[d + 1];
  // Output offset of each element of a (scaled by b's extent) and of b; an element pair adds them.
  const offsets = (dims: number[], scale: number[]): Int32Array => {
    const total = dims.reduce((x, y) => x * y, 1);
    const off = new Int32Array(total);
    const idx = new Array<number>(n).fill(0);
    for (let f = 0; f < total; f++) {
      let o = 0;
      for (let d = 0; d < n; d++) o += idx[d] * scale[d] * stride[d];
      off[f] = o;
      for (let d = n - 1; d >= 0; d--) {
        if (++idx[d] < dims[d]) break;
        idx[d] = 0;
      }
    }
    return off;
  };
  const offA = offsets(pa, pb);
  const offB = offsets(pb, new Array<number>(n).fill(1));
  const out = new Float32Array(shape.reduce((x, y) => x * y, 1));
  for (let i = 0; i < a.length; i++) {
    const av = a[i];
    const base = offA[i];
    for (let j = 0; j < b.length; j++) out[base + offB[j]] = av * b[j];
  }
  return { data: out, shape };
}

/**
 * The Tucker rebuild 'i j k l, j r, i p -> p r k l' (LyCORIS's CP form for LoHa and LoKr):
 * t [I, J, K, L], b [J, R], a [I, P] → [P, R, K, L], as two matrix products.
 */
export async function tuckerRebuild(t: Float32Array, tShape: readonly number[], b: Float32Array, bShape: readonly number[], a: Float32Array, aShape: readonly number[], mm: MatMul): Promise<Float32Array> {
  const [I, J, K, L] = tShape;
  const R = bShape[1];
  const P = aShape[1];
  const KL = K * L;
  // temp[i, r, kl] = Σ_j b[j, r] · t[i, j, kl]: per i, bᵀ [R, J] · t_i [J, KL].
  const bT = transpose2d(b, J, R);
  const temp = new Float32Array(I * R * KL);
  for (let i = 0; i < I; i++) temp.set(await mm(bT, R, J, t.subarray(i * J * KL, (i + 1) * J * KL), KL), i * R * KL);
  // out[p, (r, kl)] = Σ_i a[i, p] · temp[i, (r, kl)].
  return mm(transpose2d(a, I, P), P, I, temp, R * KL);
}
