/**
 * The Tiled VAE's tile layout (VAEHook.split_tiles, get_best_tile_size, crop_valid_region in the
 * extension's tiled_vae.py): tiles of about `tileSize` (shrunk so they share the image evenly, then
 * rounded up to a multiple of 32, 16, … when that still fits), each read with `pad` extra input
 * pixels on every side that are cut off again from its output, except at the image's borders.
 */

/** [x1, x2, y1, y2], the extension's bbox order. */
export type Bbox = [number, number, number, number];

export function bestTileSize(lower: number, upper: number): number {
  let divider = 32;
  while (divider >= 2) {
    // Python's modulo: a negative lower bound (an image smaller than two pads) still rounds up.
    const rem = ((lower % divider) + divider) % divider;
    if (rem === 0) return lower;
    const candidate = lower - rem + divider;
    if (candidate <= upper) return candidate;
    divider = Math.floor(divider / 2);
  }
  return lower;
}

export interface TileSplit {
  /** Input rectangles, padded. */
  readonly input: Bbox[];
  /** Where each tile's valid output goes (output pixels). */
  readonly output: Bbox[];
}

/** `scale`: output pixels per input pixel (8 decoding, 1/8 encoding, by floor division). */
export function splitTiles(h: number, w: number, tileSize: number, pad: number, decoder: boolean): TileSplit {
  const rows = Math.max(Math.ceil((h - 2 * pad) / tileSize), 1);
  const cols = Math.max(Math.ceil((w - 2 * pad) / tileSize), 1);
  const th = bestTileSize(Math.ceil((h - 2 * pad) / rows), tileSize);
  const tw = bestTileSize(Math.ceil((w - 2 * pad) / cols), tileSize);
  const scale = (v: number): number => (decoder ? v * 8 : Math.floor(v / 8));
  const input: Bbox[] = [];
  const output: Bbox[] = [];
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < cols; j++) {
      const b: Bbox = [pad + j * tw, Math.min(pad + (j + 1) * tw, w), pad + i * th, Math.min(pad + (i + 1) * th, h)];
      output.push([b[0] > pad ? b[0] : 0, b[1] < w - pad ? b[1] : w, b[2] > pad ? b[2] : 0, b[3] < h - pad ? b[3] : h].map(scale) as Bbox);
      input.push([Math.max(0, b[0] - pad), Math.min(w, b[1] + pad), Math.max(0, b[2] - pad), Math.min(h, b[3] + pad)]);
    }
  return { input, output };
}
