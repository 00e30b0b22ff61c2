import { f32BitsToF16 } from '../core/dtype.ts';

/**
 * Float32 values that a float16 holds exactly (every weight of a checkpoint stored in float16, and
 * any permutation of them) can be stored in 16 bits and cast back by ORT without changing a bit:
 * half→float is exact. Values that are not all exact stay float32; nothing is ever rounded.
 */

/** Name of the float16 initializer that a `Cast` turns into the float32 value `name`. */
export const HALF_SUFFIX = '#f16';

/**
 * The values as float16 when every one of them is a float16 exactly (NaN payloads included), else
 * undefined. With `into` (at least as long as `values`), written there and a view of it returned.
 */
export function exactHalf(values: Float32Array, into?: Uint16Array): Uint16Array | undefined {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = into ? into.subarray(0, values.length) : new Uint16Array(values.length);
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i];
    const exp = (x >>> 23) & 0xff;
    // Normal halves (exponent 2^-14..2^15) with the 13 low mantissa bits clear, the common case, inline.
    if (exp >= 113 && exp <= 142 && (x & 0x1fff) === 0) {
      out[i] = ((x >>> 16) & 0x8000) | ((exp - 112) << 10) | ((x >>> 13) & 0x3ff);
      continue;
    }
    if ((x & 0x7fffffff) === 0) {
      out[i] = (x >>> 16) & 0x8000;
      continue;
    }
    // Subnormal halves, infinities and NaNs: round trip through the converter.
    const h = f32BitsToF16(x);
    if (halfBits(h) !== x) return undefined;
    out[i] = h;
  }
  return out;
}

/** The float32 bit pattern of a float16 (as ORT's Cast produces it). */
export function halfBits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0;
  // Subnormal half: normalise into float32's range.
  let e = 113;
  let m = mant;
  while ((m & 0x400) === 0) {
    m <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((m & 0x3ff) << 13)) >>> 0;
}
