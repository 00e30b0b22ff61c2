/**
 * Element types of stored tensors (safetensors' names) and the conversions between them: half and
 * bfloat16 rounding as torch does it, and raw little-endian bytes to float32.
 */
import os from 'node:os';

export type Dtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const ITEMSIZE: Readonly<Record<Dtype, number>> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

export function isDtype(x: unknown): x is Dtype {
  return typeof x === 'string' && Object.hasOwn(ITEMSIZE, x);
}

// ---------------------------------------------------------------------------------------------
// Half-precision conversions

let f16Table: Float32Array | undefined;

/** All 65536 half values as float32: one table lookup per element beats bit twiddling in JS. */
function halfTable(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16ToF32(h);
  }
  return f16Table;
}

/** IEEE half → float. */
export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

const F32_SCRATCH = new Float32Array(1);
const U32_SCRATCH = new Uint32Array(F32_SCRATCH.buffer);

/** float → IEEE half, rounding to nearest even (as torch's `.half()`); NaN stays NaN, overflow → ±inf. */
export function f32ToF16(v: number): number {
  F32_SCRATCH[0] = v;
  return f32BitsToF16(U32_SCRATCH[0]);
}

/** The same from a float32 bit pattern, so a whole Float32Array converts without a scratch write per value. */
export function f32BitsToF16(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  // A carry out of the mantissa correctly bumps the exponent (and 0x7bff + 1 becomes inf).
  let half = (e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

/** float → bfloat16 (upper 16 bits, round to nearest even; NaN kept quiet). */
export function f32ToBf16(v: number): number {
  F32_SCRATCH[0] = v;
  const x = U32_SCRATCH[0];
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return (x >>> 16) | 0x40;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

export const LITTLE_ENDIAN = os.endianness() === 'LE';

/** A typed view of `bytes` when aligned, else of an aligned copy (Buffers from the pool may be misaligned). */
function aligned(bytes: Uint8Array, itemsize: number): ArrayBuffer {
  if (bytes.byteOffset % itemsize === 0) return bytes.buffer as ArrayBuffer;
  return bytes.slice().buffer as ArrayBuffer;
}

/** Convert raw little-endian tensor bytes to float32 (ints and bools become their numeric values). */
export function toFloat32(dtype: Dtype, bytes: Uint8Array): Float32Array {
  const size = ITEMSIZE[dtype];
  if (bytes.length % size !== 0) throw new Error(`${bytes.length} bytes is not a whole number of ${dtype} values`);
  const n = bytes.length / size;
  const off = bytes.byteOffset % size === 0 ? bytes.byteOffset / size : 0;
  if (!LITTLE_ENDIAN) {
    // Big-endian hosts are rare enough that the slow DataView path is fine there.
    return toFloat32Slow(dtype, bytes, n);
  }
  const buf = aligned(bytes, size);
  switch (dtype) {
    case 'F32':
      return new Float32Array(buf, off * 4, n).slice();
    case 'F64':
      return Float32Array.from(new Float64Array(buf, off * 8, n));
    case 'F16': {
      const t = halfTable();
      const src = new Uint16Array(buf, off * 2, n);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = t[src[i]];
      return out;
    }
    case 'BF16': {
      const src = new Uint16Array(buf, off * 2, n);
      const out = new Float32Array(n);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = src[i] << 16;
      return out;
    }
    case 'I64': {
      const src = new BigInt64Array(buf, off * 8, n);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = Number(src[i]);
      return out;
    }
    case 'I32':
      return Float32Array.from(new Int32Array(buf, off * 4, n));
    case 'I16':
      return Float32Array.from(new Int16Array(buf, off * 2, n));
    case 'I8':
      return Float32Array.from(new Int8Array(buf, off, n));
    case 'U8':
      return Float32Array.from(new Uint8Array(buf, off, n));
    case 'BOOL': {
      const src = new Uint8Array(buf, off, n);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = src[i] ? 1 : 0;
      return out;
    }
  }
}

function toFloat32Slow(dtype: Dtype, bytes: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < n; i++) {
    switch (dtype) {
      case 'F32':
        out[i] = dv.getFloat32(i * 4, true);
        break;
      case 'F64':
        out[i] = dv.getFloat64(i * 8, true);
        break;
      case 'F16':
        out[i] = f16ToF32(dv.getUint16(i * 2, true));
        break;
      case 'BF16':
        U32_SCRATCH[0] = dv.getUint16(i * 2, true) << 16;
        out[i] = F32_SCRATCH[0];
        break;
      case 'I64':
        out[i] = Number(dv.getBigInt64(i * 8, true));
        break;
      case 'I32':
        out[i] = dv.getInt32(i * 4, true);
        break;
      case 'I16':
        out[i] = dv.getInt16(i * 2, true);
        break;
      case 'I8':
        out[i] = dv.getInt8(i);
        break;
      case 'U8':
        out[i] = dv.getUint8(i);
        break;
      case 'BOOL':
        out[i] = dv.getUint8(i) ? 1 : 0;
        break;
    }
  }
  return out;
}
