/**
 * float32 fused multiply-add, `fmaf(a, b, c)` with one rounding, as the FMA3 units OpenCV's AVX2 code
 * paths use (`v_muladd`, and the compiler's contraction of `s += k * x`). a·b of two float32s is
 * exact in a double, a·b + c may not be: the sum's error is recovered (TwoSum) and decides the one
 * case where rounding the double to float32 would round twice, a double lying exactly halfway
 * between two float32s.
 */
export function fmaf(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const r = Math.fround(s);
  if (r === s || !Number.isFinite(s)) return r;
  const bb = s - p;
  const err = p - (s - bb) + (c - bb);
  if (err === 0) return r;
  // the other float32 neighbour of s
  const o = Math.fround(r + (s - r) * 2);
  if ((r + o) / 2 !== s) return r;
  return err > 0 === o > r ? o : r;
}
