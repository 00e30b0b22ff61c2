/**
 * Pillow 9.4's RGB colour quantizer, reproduced for ComfyUI's ImageQuantize: the median-cut palette of
 * `Image.quantize(colors)` (libImaging/Quant.c) and the palette mapping of `Image.quantize(palette=...)`
 * (libImaging/Convert.c `topalette` with the Palette.c colour cache), with or without Pillow's integer
 * Floyd–Steinberg. Every tie-break follows Pillow so the outputs match it byte for byte.
 *
 * Pixels are packed RGB bytes (3 per pixel), row-major.
 */

/**
 * A palette: `colors[3 * i + c]`, `size` entries searched when mapping. Pillow 9.4 keeps 256 entries on
 * a quantized image, the median-cut colours (`used` of them) followed by black, and maps against all 256.
 */
export interface Palette {
  colors: Uint8Array;
  size: number;
  used: number;
}

// Quant.c keys its histogram on this hash of the (scaled) colour and compares keys by the hash alone.
function pixelHash(r: number, g: number, b: number): number {
  return (Math.imul(r, 463) ^ Math.imul(g << 8, 10069) ^ Math.imul(b << 16, 64997)) >>> 0;
}

const MAX_HASH_ENTRIES = 65536;

interface ColourEntry {
  r: number;
  g: number;
  b: number;
  count: number;
}

/**
 * The histogram: when more than 65536 distinct colours are seen, Pillow drops one more low bit of every
 * channel and merges, in the order the pixels arrive. Returns the entries with their scaled colours.
 */
function histogram(rgb: Uint8Array, nPixels: number): { entries: ColourEntry[]; scale: number } {
  let scale = 0;
  // hash -> first colour inserted with it (unscaled) and its count
  let table = new Map<number, ColourEntry>();
  for (let i = 0; i < nPixels; i++) {
    const r = rgb[3 * i]!;
    const g = rgb[3 * i + 1]!;
    const b = rgb[3 * i + 2]!;
    const key = pixelHash(r >> scale, g >> scale, b >> scale);
    const e = table.get(key);
    if (e) e.count++;
    else table.set(key, { r, g, b, count: 1 });
    while (table.size > MAX_HASH_ENTRIES) {
      scale++;
      const next = new Map<number, ColourEntry>();
      for (const v of table.values()) {
        const k = pixelHash(v.r >> scale, v.g >> scale, v.b >> scale);
        const w = next.get(k);
        if (w) w.count += v.count;
        else next.set(k, v);
      }
      table = next;
    }
  }
  const entries: ColourEntry[] = [];
  for (const v of table.values()) entries.push({ r: v.r >> scale, g: v.g >> scale, b: v.b >> scale, count: v.count });
  return { entries, scale };
}

function channel(e: ColourEntry, axis: number): number {
  return axis === 0 ? e.r : axis === 1 ? e.g : e.b;
}

/** A median-cut box: its colours sorted by each channel, descending (Pillow's per-axis lists). */
interface Box {
  lists: [ColourEntry[], ColourEntry[], ColourEntry[]];
  pixelCount: number;
  left?: Box;
  right?: Box;
}

function boxVolume(box: Box): number {
  const [lr, lg, lb] = box.lists;
  if (lr.length === 0) return 0;
  return (lr[0]!.r - lr[lr.length - 1]!.r + 1) * (lg[0]!.g - lg[lg.length - 1]!.g + 1) * (lb[0]!.b - lb[lb.length - 1]!.b + 1);
}

function splitBox(box: Box): void {
  const [lr, lg, lb] = box.lists;
  // Widest channel weighted by luminance; the first of equals wins.
  const f = [(lr[0]!.r - lr[lr.length - 1]!.r) * 77, (lg[0]!.g - lg[lg.length - 1]!.g) * 150, (lb[0]!.b - lb[lb.length - 1]!.b) * 29];
  let axis = 0;
  for (let i = 1; i < 3; i++) if (f[axis]! < f[i]!) axis = i;
  const list = box.lists[axis]!;
  const toRight = new Set<ColourEntry>();
  let leftCount = 0;
  let rightCount = 0;
  // Walk down the axis until more than half the pixels are on the left, then keep the rest of that value.
  let k = 0;
  let acc = 0;
  while (k < list.length) {
    acc += list[k]!.count;
    leftCount += list[k]!.count;
    k++;
    if (acc * 2 > box.pixelCount) break;
  }
  if (k < list.length) {
    const v = channel(list[k - 1]!, axis);
    while (k < list.length && channel(list[k]!, axis) === v) leftCount += list[k++]!.count;
  }
  for (; k < list.length; k++) {
    toRight.add(list[k]!);
    rightCount += list[k]!.count;
  }
  if (toRight.size === 0) {
    // Nothing past the median: the last value's colours go right instead.
    const v = channel(list[list.length - 1]!, axis);
    for (let j = list.length - 1; j >= 0 && channel(list[j]!, axis) === v; j--) {
      toRight.add(list[j]!);
      leftCount -= list[j]!.count;
      rightCount += list[j]!.count;
    }
  }
  const part = (keep: boolean) => box.lists.map((l) => l.filter((e) => toRight.has(e) !== keep)) as Box['lists'];
  box.left = { lists: part(true), pixelCount: leftCount >>> 0 };
  box.right = { lists: part(false), pixelCount: rightCount >>> 0 };
}

/** Quant.c's binary max-heap on pixel counts, 1-based, with its exact sift rules (they decide ties). */
class BoxHeap {
  private readonly heap: (Box | undefined)[] = [undefined];
  private count = 0;
  private static cmp(a: Box, b: Box): number {
    return (a.pixelCount | 0) - (b.pixelCount | 0);
  }
  add(box: Box): void {
    let k = ++this.count;
    while (k !== 1) {
      if (BoxHeap.cmp(box, this.heap[k >> 1]!) <= 0) break;
      this.heap[k] = this.heap[k >> 1];
      k >>= 1;
    }
    this.heap[k] = box;
  }
  remove(): Box | undefined {
    if (this.count === 0) return undefined;
    const top = this.heap[1]!;
    const v = this.heap[this.count--]!;
    let k = 1;
    while (k * 2 <= this.count) {
      let l = k * 2;
      if (l < this.count && BoxHeap.cmp(this.heap[l]!, this.heap[l + 1]!) < 0) l++;
      if (BoxHeap.cmp(v, this.heap[l]!) > 0) break;
      this.heap[k] = this.heap[l];
      k = l;
    }
    this.heap[k] = v;
    return top;
  }
}

function sortDescending(entries: ColourEntry[], axis: number): ColourEntry[] {
  // Stable sort; the order among equal values does not change any split (splits are decided by value).
  return [...entries].sort((a, b) => channel(b, axis) - channel(a, axis));
}

/** `Image.quantize(colors)` on an RGB image with Pillow's defaults (median cut, no k-means): the palette. */
export function medianCutPalette(rgb: Uint8Array, nPixels: number, colors: number): Palette {
  if (nPixels === 0) throw new Error('medianCutPalette: the image has no pixels');
  const { entries, scale } = histogram(rgb, nPixels);
  const root: Box = { lists: [sortDescending(entries, 0), sortDescending(entries, 1), sortDescending(entries, 2)], pixelCount: nPixels };
  const heap = new BoxHeap();
  heap.add(root);
  outer: for (let n = colors - 1; n > 0; n--) {
    let box: Box | undefined;
    do {
      box = heap.remove();
      if (!box) break outer;
    } while (boxVolume(box) === 1);
    splitBox(box);
    heap.add(box.left!);
    heap.add(box.right!);
  }
  // Leaves left to right are the palette entries; each colour (at the histogram's scale) knows its box.
  const boxOf = new Map<number, number>();
  let nEntries = 0;
  const annotate = (box: Box): void => {
    if (box.left && box.right) {
      annotate(box.left);
      annotate(box.right);
      return;
    }
    for (const e of box.lists[0]) boxOf.set(pixelHash(e.r, e.g, e.b), nEntries);
    if (box.lists[0].length > 0) nEntries++;
  };
  annotate(root);
  // Averages over the original pixels of each box, rounded half up as Pillow's (int)(.5 + mean).
  const sums = new Float64Array(nEntries * 3);
  const counts = new Float64Array(nEntries);
  for (let i = 0; i < nPixels; i++) {
    const r = rgb[3 * i]!;
    const g = rgb[3 * i + 1]!;
    const b = rgb[3 * i + 2]!;
    const idx = boxOf.get(pixelHash(r >> scale, g >> scale, b >> scale))!;
    sums[3 * idx] = (sums[3 * idx]! + r) % 4294967296;
    sums[3 * idx + 1] = (sums[3 * idx + 1]! + g) % 4294967296;
    sums[3 * idx + 2] = (sums[3 * idx + 2]! + b) % 4294967296;
    counts[idx]!++;
  }
  const out = new Uint8Array(256 * 3);
  for (let i = 0; i < nEntries; i++) for (let c = 0; c < 3; c++) out[3 * i + c] = Math.trunc(0.5 + sums[3 * i + c]! / counts[i]!) & 255;
  return { colors: out, size: 256, used: nEntries };
}

/**
 * Palette.c's colour cache: a colour maps to the palette entry nearest (squared RGB distance, first
 * of equals) to its cache cell's corner, each channel with its two low bits cleared.
 */
class PaletteCache {
  private readonly cache = new Int16Array(64 * 64 * 64).fill(-1);
  constructor(private readonly palette: Palette) {}
  lookup(r: number, g: number, b: number): number {
    const slot = (r >> 2) + (g >> 2) * 64 + (b >> 2) * 4096;
    let v = this.cache[slot]!;
    if (v < 0) {
      const { colors, size } = this.palette;
      const r0 = r & 0xfc;
      const g0 = g & 0xfc;
      const b0 = b & 0xfc;
      let best = 0;
      let bestDist = Infinity;
      for (let i = 0; i < size; i++) {
        const dr = r0 - colors[3 * i]!;
        const dg = g0 - colors[3 * i + 1]!;
        const db = b0 - colors[3 * i + 2]!;
        const d = dr * dr + dg * dg + db * db;
        if (d < bestDist) {
          bestDist = d;
          best = i;
        }
      }
      v = best;
      this.cache[slot] = v;
    }
    return v;
  }
}

function clip8(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * `im.quantize(palette=pal_im, dither=...)` for RGB `im`: palette indices, one per pixel.
 * Floyd–Steinberg is Pillow's integer variant (errors in sixteenths, C division truncating toward zero).
 */
export function mapToPalette(rgb: Uint8Array, width: number, height: number, palette: Palette, floydSteinberg: boolean): Uint8Array {
  const cache = new PaletteCache(palette);
  const out = new Uint8Array(width * height);
  if (!floydSteinberg) {
    for (let i = 0; i < width * height; i++) out[i] = cache.lookup(rgb[3 * i]!, rgb[3 * i + 1]!, rgb[3 * i + 2]!);
    return out;
  }
  const pal = palette.colors;
  const errors = new Int32Array((width + 1) * 3);
  for (let y = 0; y < height; y++) {
    const acc = [0, 0, 0]; // the error carried to the right (7/16 part, in sixteenths)
    const e0 = [0, 0, 0]; // pending below-left + below sums
    const e1 = [0, 0, 0];
    const e2 = [0, 0, 0];
    let e = 0;
    for (let x = 0; x < width; x++) {
      const p = (y * width + x) * 3;
      const v = [0, 0, 0];
      for (let c = 0; c < 3; c++) v[c] = clip8(rgb[p + c]! + Math.trunc((acc[c]! + errors[e + 3 + c]!) / 16));
      const idx = cache.lookup(v[0]!, v[1]!, v[2]!);
      out[y * width + x] = idx;
      for (let c = 0; c < 3; c++) {
        let q = v[c]! - pal[3 * idx + c]!;
        const q2 = q;
        const d2 = q + q;
        q += d2; // 3 q: below-left
        errors[e + c] = q + e0[c]!;
        q += d2; // 5 q: below
        e0[c] = q + e1[c]!;
        e1[c] = q2; // 1 q: below-right
        q += d2; // 7 q: right
        acc[c] = q;
        e2[c] = q2;
      }
      e += 3;
    }
    // Pillow writes the last column's pending sums into the extra cell, mixing channels as it does.
    errors[e] = e0[2]!;
    errors[e + 1] = e1[2]!;
    errors[e + 2] = e2[2]!;
  }
  return out;
}

/** Palette indices to packed RGB bytes. */
export function paletteToRgb(indices: Uint8Array, palette: Palette): Uint8Array {
  const out = new Uint8Array(indices.length * 3);
  for (let i = 0; i < indices.length; i++) {
    const k = indices[i]!;
    out[3 * i] = palette.colors[3 * k]!;
    out[3 * i + 1] = palette.colors[3 * k + 1]!;
    out[3 * i + 2] = palette.colors[3 * k + 2]!;
  }
  return out;
}
