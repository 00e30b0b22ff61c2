import type { ImageTensor } from '../../core/tensor.ts';

/**
 * Interleaved HWC images as OpenCV and numpy hold them (`uint8` or `float32`/`float64`), the form
 * comfyui_controlnet_aux's detectors work in. IMAGE tensors are converted at the node boundary.
 */
export interface Mat<A extends Uint8Array | Float32Array | Float64Array = Uint8Array> {
  readonly h: number;
  readonly w: number;
  readonly c: number;
  readonly data: A;
}

export type U8Mat = Mat<Uint8Array>;
export type F32Mat = Mat<Float32Array>;
export type F64Mat = Mat<Float64Array>;

export function u8Mat(h: number, w: number, c: number, data?: Uint8Array): U8Mat {
  const n = h * w * c;
  if (data && data.length !== n) throw new Error(`image data has ${data.length} bytes, ${h}x${w}x${c} needs ${n}`);
  return { h, w, c, data: data ?? new Uint8Array(n) };
}

export function f32Mat(h: number, w: number, c: number, data?: Float32Array): F32Mat {
  return { h, w, c, data: data ?? new Float32Array(h * w * c) };
}

export function toF32(m: U8Mat): F32Mat {
  return { h: m.h, w: m.w, c: m.c, data: Float32Array.from(m.data) };
}

/** numpy's `x.clip(0, 255).astype(np.uint8)` for float arrays: clip, then truncate toward zero. */
export function clipToU8(m: F32Mat | F64Mat): U8Mat {
  const out = new Uint8Array(m.data.length);
  for (let i = 0; i < out.length; i++) {
    const v = m.data[i];
    out[i] = v >= 255 ? 255 : v > 0 ? Math.trunc(v) : 0;
  }
  return { h: m.h, w: m.w, c: m.c, data: out };
}

/**
 * The aux package's HWC3: 1 channel is repeated, 4 channels are composited over white in float32
 * and truncated; 3 channels pass. Any other count is refused (the package asserts).
 */
export function hwc3(m: U8Mat): U8Mat {
  if (m.c === 3) return m;
  const n = m.h * m.w;
  const out = new Uint8Array(n * 3);
  if (m.c === 1) {
    for (let i = 0; i < n; i++) out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = m.data[i];
  } else if (m.c === 4) {
    for (let i = 0; i < n; i++) {
      const a = Math.fround(m.data[4 * i + 3] / 255);
      const inv = Math.fround(1 - a);
      for (let k = 0; k < 3; k++) {
        const y = Math.fround(Math.fround(m.data[4 * i + k] * a) + Math.fround(255 * inv));
        out[3 * i + k] = y >= 255 ? 255 : y > 0 ? Math.trunc(y) : 0;
      }
    }
  } else {
    throw new Error(`an image with ${m.c} channels cannot be made RGB (1, 3 or 4 channels are accepted)`);
  }
  return { h: m.h, w: m.w, c: 3, data: out };
}

/**
 * One batch item of an IMAGE as ComfyUI custom nodes convert it: `np.asarray(image * 255., dtype=np.uint8)`
 * (float32 product, truncated toward zero; out-of-range values clipped, where numpy's cast is undefined).
 */
export function imageToU8(image: ImageTensor, b: number): U8Mat {
  const [, h, w, c] = image.shape;
  const n = h * w * c;
  const out = new Uint8Array(n);
  const src = image.data.subarray(b * n, (b + 1) * n);
  for (let i = 0; i < n; i++) {
    const v = Math.fround(src[i] * 255);
    out[i] = v >= 255 ? 255 : v > 0 ? Math.trunc(v) : 0;
  }
  return { h, w, c, data: out };
}

/** `torch.from_numpy(x.astype(np.float32) / 255.0)` into `out` at `offset`. */
export function u8ToFloat(m: U8Mat, out: Float32Array, offset: number): void {
  for (let i = 0; i < m.data.length; i++) out[offset + i] = Math.fround(m.data[i] / 255);
}

/** `x[:h, :w, ...]`: the top-left corner. */
export function cropTopLeft<A extends Uint8Array | Float32Array | Float64Array>(m: Mat<A>, h: number, w: number): Mat<A> {
  if (h === m.h && w === m.w) return m;
  const Ctor = m.data.constructor as new (n: number) => A;
  const out = new Ctor(h * w * m.c);
  const row = w * m.c;
  for (let y = 0; y < h; y++) out.set(m.data.subarray(y * m.w * m.c, y * m.w * m.c + row), y * row);
  return { h, w, c: m.c, data: out };
}

/** One channel of an image. */
export function channel(m: U8Mat, k: number): U8Mat {
  const n = m.h * m.w;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = m.data[i * m.c + k];
  return { h: m.h, w: m.w, c: 1, data: out };
}
