import sharp, { type Metadata, type OutputInfo, type Sharp } from 'sharp';
import type { PreviewImage } from '../core/preview.ts';
import { quantize8 } from './quantize.ts';
import { describeShape, type ImageTensor, type MaskTensor, type Tensor } from '../core/tensor.ts';

/**
 * Default largest frame decoded (pixels; sharp's limitInputPixels), so a crafted header cannot make
 * us allocate gigabytes: 8192² (64 Mpx) decodes to 0.8 GB of float32 RGB already.
 */
export const DEFAULT_MAX_IMAGE_PIXELS = 8192 * 8192;
const limits = { maxPixels: DEFAULT_MAX_IMAGE_PIXELS };

/** Sets the process-wide default frame limit (`weft serve --max-image-pixels`). */
export function setMaxImagePixels(pixels: number): void {
  if (!Number.isSafeInteger(pixels) || pixels < 1) throw new Error(`image pixel limit ${pixels}: expected a positive integer`);
  limits.maxPixels = pixels;
}

export function maxImagePixels(): number {
  return limits.maxPixels;
}
/** Largest batch decoded from one file (pixels over all frames kept). */
export const MAX_TOTAL_PIXELS = 2 ** 28;

export interface DecodedImage {
  /** [B, H, W, 3] in 0..1: every frame of the file that has the first frame's size. */
  frames: ImageTensor;
  /** [B, H, W] alpha in 0..1, when the file has an alpha channel. */
  alpha?: MaskTensor;
}

export interface DecodeOptions {
  /** Name used in error messages (defaults to the path, or "image data" for a buffer). */
  name?: string;
  maxPixels?: number;
  maxTotalPixels?: number;
  maxFrames?: number;
}

/** Most frames read from one file (ComfyUI's largest batch size). */
export const MAX_FRAMES = 4096;

interface Frame {
  rgb: Float32Array;
  alpha?: Float32Array;
  w: number;
  h: number;
}

/** Split sharp's raw output (frames stacked vertically) into 0..1 RGB planes and alpha. */
function toFrames(data: Buffer, w: number, frameH: number, count: number, channels: number): Frame[] {
  const px = w * frameH;
  const wide = data.length === px * count * channels * 2;
  const bytes = wide && data.byteOffset % 2 !== 0 ? Buffer.from(data) : data;
  const src = wide ? new Uint16Array(bytes.buffer, bytes.byteOffset, px * count * channels) : bytes;
  const max = wide ? 65535 : 255;
  const grey = channels < 3;
  const hasAlpha = channels === 4 || channels === 2;
  const frames: Frame[] = [];
  for (let f = 0; f < count; f++) {
    const rgb = new Float32Array(px * 3);
    const alpha = hasAlpha ? new Float32Array(px) : undefined;
    for (let i = 0; i < px; i++) {
      const s = (f * px + i) * channels;
      for (let k = 0; k < 3; k++) rgb[i * 3 + k] = src[s + (grey ? 0 : k)] / max;
      if (alpha) alpha[i] = src[s + channels - 1] / max;
    }
    frames.push({ rgb, alpha, w, h: frameH });
  }
  return frames;
}

function pipeline(img: Sharp, is16: boolean, rotate: boolean): Sharp {
  return (rotate ? img.rotate() : img).toColourspace(is16 ? 'rgb16' : 'srgb').raw({ depth: is16 ? 'ushort' : 'uchar' });
}

async function decodePage(file: string | Buffer, page: number, is16: boolean, name: string, maxPixels: number): Promise<Frame> {
  let r: { data: Buffer; info: OutputInfo };
  try {
    r = await pipeline(sharp(file, { limitInputPixels: maxPixels, page, pages: 1 }), is16, true).toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new Error(`${name}: cannot decode image frame ${page}: ${(e as Error).message}`);
  }
  return toFrames(r.data, r.info.width, r.info.height, 1, r.info.channels)[0];
}

/**
 * All pages in one decode (animated GIF/WebP are sequential: decoding page p alone would redo the
 * frames before it). Undefined when libvips cannot stack them (pages of different sizes).
 */
async function decodeAllPages(
  file: string | Buffer,
  pages: number,
  frameW: number,
  frameH: number,
  is16: boolean,
  limit: number,
): Promise<Frame[] | undefined> {
  try {
    const r = await pipeline(sharp(file, { limitInputPixels: limit, pages: -1 }), is16, false).toBuffer({ resolveWithObject: true });
    if (r.info.width !== frameW || r.info.height !== frameH * pages) return undefined;
    return toFrames(r.data, frameW, frameH, pages, r.info.channels);
  } catch {
    return undefined;
  }
}

/**
 * Decode an image file as ComfyUI's LoadImage does: EXIF orientation applied, every frame of a
 * multi-frame file (GIF, WebP, TIFF, APNG) that has the first frame's size (others are skipped), 8 or
 * 16 bits per channel scaled to 0..1, colour converted to sRGB.
 */
export async function decodeImageFile(file: string | Buffer, opts: DecodeOptions = {}): Promise<DecodedImage> {
  const name = opts.name ?? (typeof file === 'string' ? file : 'image data');
  const maxPixels = opts.maxPixels ?? limits.maxPixels;
  const maxTotal = opts.maxTotalPixels ?? MAX_TOTAL_PIXELS;
  const maxFrames = opts.maxFrames ?? MAX_FRAMES;
  let meta: Metadata;
  try {
    meta = await sharp(file, { limitInputPixels: maxPixels }).metadata();
  } catch (e) {
    throw new Error(`${name}: cannot read image: ${(e as Error).message}`);
  }
  const w0 = meta.width ?? 0;
  const h0 = meta.pageHeight ?? meta.height ?? 0;
  if (w0 * h0 > maxPixels) {
    throw new Error(`${name}: image is ${w0}×${h0} = ${w0 * h0} pixels, more than the ${maxPixels} allowed`);
  }
  const pages = Math.max(1, meta.pages ?? 1);
  if (pages > maxFrames) throw new Error(`${name}: has ${pages} frames, more than the ${maxFrames} allowed`);
  const is16 = meta.depth === 'ushort';
  let frames: Frame[] | undefined;
  // Stacked decoding skips EXIF rotation, which animations practically never carry; those that do go page by page.
  if (pages > 1 && (meta.orientation ?? 1) <= 1 && w0 * h0 * pages <= maxTotal) {
    frames = await decodeAllPages(file, pages, w0, h0, is16, maxTotal);
  }
  if (!frames) {
    frames = [];
    let total = 0;
    for (let p = 0; p < pages; p++) {
      const f = await decodePage(file, p, is16, name, maxPixels);
      if (frames.length && (f.w !== frames[0].w || f.h !== frames[0].h)) continue;
      total += f.w * f.h;
      if (total > maxTotal) {
        throw new Error(`${name}: frames 0..${p} hold ${total} pixels, more than the ${maxTotal} allowed in one batch`);
      }
      frames.push(f);
    }
  }
  const { w, h } = frames[0];
  const b = frames.length;
  const image = new Float32Array(b * w * h * 3);
  frames.forEach((f, i) => image.set(f.rgb, i * w * h * 3));
  const out: DecodedImage = { frames: { shape: [b, h, w, 3], data: image } };
  // libvips gives palette images (GIF, palette PNG) an alpha band even when nothing is transparent,
  // where PIL has none and ComfyUI returns its 64×64 placeholder mask: keep such alpha only if used.
  const opaque = (f: Frame): boolean => !f.alpha || f.alpha.every((v) => v === 1);
  if (meta.isPalette && frames.every(opaque)) for (const f of frames) f.alpha = undefined;
  if (frames.some((f) => f.alpha)) {
    const alpha = new Float32Array(b * w * h).fill(1);
    frames.forEach((f, i) => f.alpha && alpha.set(f.alpha, i * w * h));
    out.alpha = { shape: [b, h, w], data: alpha };
  }
  return out;
}

export interface Raw8 {
  data: Uint8Array;
  width: number;
  height: number;
  channels: number;
}

/** One item ([H, W, C] or item `index` of [B, H, W, C]) as bounds-checked dimensions and offset. */
function item(image: Tensor, index: number): { h: number; w: number; c: number; off: number } {
  const r = image.shape.length;
  if (r !== 3 && r !== 4) throw new Error(`expected an IMAGE [B, H, W, C] or one item [H, W, C], got shape ${describeShape(image.shape)}`);
  const [h, w, c] = image.shape.slice(r - 3);
  const b = r === 4 ? image.shape[0] : 1;
  if (!Number.isInteger(index) || index < 0 || index >= b) throw new Error(`image index ${index} is outside a batch of ${b}`);
  return { h, w, c, off: index * h * w * c };
}

/** An image as ComfyUI saves it: `np.clip(255. * x, 0, 255).astype(np.uint8)` (float32 product, truncated). */
export function toRgb8(image: Tensor, index = 0): Raw8 {
  const { h, w, c, off } = item(image, index);
  const n = h * w * c;
  const data = new Uint8Array(n);
  for (let i = 0; i < n; i++) data[i] = quantize8(image.data[off + i]);
  return { data, width: w, height: h, channels: c };
}

/** 8-bit interleaved pixels to a one-item IMAGE [1, H, W, C] in 0..1 (v / 255, as ComfyUI loads them). */
export function fromRgb8(data: Uint8Array, width: number, height: number, channels = 3): ImageTensor {
  if (data.length !== width * height * channels) {
    throw new Error(`${data.length} bytes do not make a ${width}×${height} image of ${channels} channels`);
  }
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data[i] / 255;
  return { shape: [1, height, width, channels], data: out };
}

export interface PngOptions {
  /** zlib level 0..9 (SaveImage 4, PreviewImage 1). */
  compressionLevel: number;
  /** Which item of a [B, H, W, C] batch (default 0). */
  index?: number;
}

/** One image as an 8-bit PNG (grey, grey+alpha, RGB or RGBA by channel count), quantised as ComfyUI. */
export async function encodePng(image: Tensor, opts: PngOptions): Promise<Buffer> {
  const { data, width, height: h, channels } = toRgb8(image, opts.index ?? 0);
  if (channels < 1 || channels > 4) throw new Error(`cannot write a PNG with ${channels} channels`);
  return sharp(data, { raw: { width, height: h, channels: channels as 1 | 2 | 3 | 4 } })
    .png({ compressionLevel: opts.compressionLevel })
    .toBuffer();
}

/** A preview (8-bit RGB) of one image of a batch, for progress previews. */
export function imageToPreview(image: Tensor, index = 0): PreviewImage {
  const { data, width, height: h, channels } = toRgb8(image, index);
  if (channels === 3) return { width, height: h, rgb: data };
  const rgb = new Uint8Array(width * h * 3);
  for (let i = 0; i < width * h; i++) {
    for (let k = 0; k < 3; k++) rgb[i * 3 + k] = data[i * channels + (channels >= 3 ? k : 0)];
  }
  return { width, height: h, rgb };
}

/** JPEG of a preview (what ComfyUI sends in binary preview frames). */
export async function encodeJpeg(preview: PreviewImage, quality = 95): Promise<Buffer> {
  if (preview.rgb.length !== preview.width * preview.height * 3) {
    throw new Error(
      `preview of ${preview.width}×${preview.height} needs ${preview.width * preview.height * 3} RGB bytes, got ${preview.rgb.length}`,
    );
  }
  return sharp(Buffer.from(preview.rgb.buffer, preview.rgb.byteOffset, preview.rgb.byteLength), {
    raw: { width: preview.width, height: preview.height, channels: 3 },
  })
    .jpeg({ quality })
    .toBuffer();
}
