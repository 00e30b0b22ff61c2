import { gray8, invert, linearGradient, pasteGray, radialGradient, resizeBicubic, rotateSquare, type Gray8 } from './pil-ops.ts';

/**
 * The gradient masks of Ultimate SD Upscale's seam fixes, built as its script builds them with
 * Pillow: half-tile bands ramp up to the seam and back down, the intersections use an inverted
 * radial gradient, the band pass a mirrored ramp stretched over the whole image side.
 */

/** Half Tile: the row mask (a horizontal seam in its middle) and the column mask (a vertical one), both tile-sized. */
export function halfTileGradients(tw: number, th: number): { row: Gray8; col: Gray8 } {
  const g = linearGradient();
  const row = gray8(tw, th);
  pasteGray(row, resizeBicubic(g, tw, Math.floor(th / 2)), 0, 0);
  pasteGray(row, resizeBicubic(rotateSquare(g, 180), tw, Math.floor(th / 2)), 0, Math.floor(th / 2));
  const col = gray8(tw, th);
  pasteGray(col, resizeBicubic(rotateSquare(g, 90), Math.floor(tw / 2), th), 0, 0);
  pasteGray(col, resizeBicubic(rotateSquare(g, 270), Math.floor(tw / 2), th), Math.floor(tw / 2), 0);
  return { row, col };
}

/** Half Tile + Intersections: the inverted radial gradient, tile-sized. */
export function cornerGradient(tw: number, th: number): Gray8 {
  return invert(resizeBicubic(radialGradient(), tw, th));
}

/** Band Pass: the horizontal band (image width × band width) and the vertical one (band width × image height). */
export function bandPassGradients(imageW: number, imageH: number, width: number): { row: Gray8; col: Gray8 } {
  const g = linearGradient();
  const mirror = gray8(256, 256);
  pasteGray(mirror, resizeBicubic(g, 256, 128), 0, 0);
  pasteGray(mirror, resizeBicubic(rotateSquare(g, 180), 256, 128), 0, 128);
  return { row: resizeBicubic(mirror, imageW, width), col: resizeBicubic(rotateSquare(mirror, 90), width, imageH) };
}
