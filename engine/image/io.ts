import sharp, { type Metadata, type OutputInfo } from 'sharp';
import type { PreviewImage } from '../registry/context.ts';
import type { ImageTensor, MaskTensor, Tensor } from './tensor.ts';

/** Largest decoded image accepted (pixels), so a crafted header cannot make us allocate gigabytes. */
export const MAX_PIXELS = 16384 * 16384;

export interface DecodedImage {
  /** [B, H, W, 3] in 0..1 */
  image: ImageTensor;
  /** [B, H, W] alpha in 0..1 when the file has an alpha channel. */
  alpha?: MaskTensor;
}

/**
 * Decode an image file as ComfyUI's LoadImage does: EXIF orientation applied, every frame of a
 * multi-frame file that has the first frame's size, 8 or 16 bits per channel scaled to 0..1.
 */
export async function decodeImageFile(file: string | Buffer): Promise<DecodedImage> {
  const name = typeof file === 'string' ? file : 'image data';
  let meta: Metadata;
  try {
    meta = await sharp(file, { limitInputPixels: MAX_PIXELS }).metadata();
  } catch (e) {
    throw new Error(`${name}: cannot read image: ${(e as Error).message}`);
  }
  const pages = Math.max(1, meta.pages ?? 1);
  const frames: { rgb: Float32Array; a?: Float32Array; w: number; h: number }[] = [];
  for (let p = 0; p < pages; p++) {
    let r: { data: Buffer; info: OutputInfo };
    try {
      r = await sharp(file, { limitInputPixels: MAX_PIXELS, page: p, pages: 1 })
        .rotate()
        .toColourspace(meta.depth === 'ushort' ? 'rgb16' : 'srgb')
        .raw({ depth: meta.depth === 'ushort' ? 'ushort' : 'uchar' })
        .toBuffer({ resolveWithObject: true });
    } catch (e) {
      throw new Error(`${name}: cannot decode frame ${p}: ${(e as Error).message}`);
    }
    const { width: w, height: h, channels } = r.info;
    if (frames.length && (w !== frames[0].w || h !== frames[0].h)) continue;
    const is16 = r.data.length === w * h * channels * 2;
    const src = is16 ? new Uint16Array(r.data.buffer, r.data.byteOffset, w * h * channels) : r.data;
    const max = is16 ? 65535 : 255;
    const rgb = new Float32Array(w * h * 3);
    const a = channels === 4 || channels === 2 ? new Float32Array(w * h) : undefined;
    for (let i = 0; i < w * h; i++) {
      if (channels >= 3) {
        rgb[i * 3] = src[i * channels] / max;
        rgb[i * 3 + 1] = src[i * channels + 1] / max;
        rgb[i * 3 + 2] = src[i * channels + 2] / max;
      } else {
        rgb[i * 3] = rgb[i * 3 + 1] = rgb[i * 3 + 2] = src[i * channels] / max;
      }
      if (a) a[i] = src[i * channels + channels - 1] / max;
    }
    frames.push({ rgb, a, w, h });
  }
  const { w, h } = frames[0];
  const image = new Float32Array(frames.length * w * h * 3);
  frames.forEach((f, i) => image.set(f.rgb, i * w * h * 3));
  const out: DecodedImage = { image: { shape: [frames.length, h, w, 3], data: image } };
  if (frames.some((f) => f.a)) {
    const alpha = new Float32Array(frames.length * w * h).fill(1);
    frames.forEach((f, i) => f.a && alpha.set(f.a, i * w * h));
    out.alpha = { shape: [frames.length, h, w], data: alpha };
  }
  return out;
}

/** One item of an IMAGE batch as 8-bit RGB(A), as ComfyUI saves: clip(255·x) truncated. */
export function toUint8(image: Tensor, index = 0): { data: Buffer; width: number; height: number; channels: number } {
  const [, h, w, c] = image.shape;
  const n = h * w * c;
  const data = Buffer.alloc(n);
  const off = index * n;
  for (let i = 0; i < n; i++) {
    const v = 255 * image.data[off + i];
    data[i] = v <= 0 || Number.isNaN(v) ? 0 : v >= 255 ? 255 : Math.trunc(v);
  }
  return { data, width: w, height: h, channels: c };
}

export async function encodePng(image: Tensor, index: number, compressionLevel: number): Promise<Buffer> {
  const { data, width, height, channels } = toUint8(image, index);
  return sharp(data, { raw: { width, height, channels: channels as 1 | 2 | 3 | 4 } })
    .png({ compressionLevel, adaptiveFiltering: false })
    .toBuffer();
}

export async function encodeJpeg(preview: PreviewImage, quality = 95): Promise<Buffer> {
  return sharp(Buffer.from(preview.rgb.buffer, preview.rgb.byteOffset, preview.rgb.byteLength), {
    raw: { width: preview.width, height: preview.height, channels: 3 },
  })
    .jpeg({ quality })
    .toBuffer();
}
