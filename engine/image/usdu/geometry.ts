import { pyRound } from '../../core/py-round.ts';
import { gray8, pasteGray, type Gray8 } from './pil-ops.ts';
import { bandPassGradients, cornerGradient, halfTileGradients } from './seam-masks.ts';

/**
 * Where Ultimate SD Upscale works, as ComfyUI_UltimateSDUpscale runs Coyote-A's A1111 script
 * (with its patches): the canvas size, the upscaler's factors, the tile grid and order, and for
 * every img2img pass its mask, padding, blur and processing size; then, per pass, the crop region
 * and tile size as its `process_images` computes them. Pure geometry: nothing here samples.
 */

export const USDU_MODES = ['Linear', 'Chess', 'None'] as const;
export const USDU_SEAM_FIX_MODES = ['None', 'Band Pass', 'Half Tile', 'Half Tile + Intersections'] as const;
export type UsduMode = (typeof USDU_MODES)[number];
export type UsduSeamFixMode = (typeof USDU_SEAM_FIX_MODES)[number];

export interface UsduParams {
  readonly tileWidth: number;
  readonly tileHeight: number;
  /** tile_padding */
  readonly padding: number;
  readonly maskBlur: number;
  readonly mode: UsduMode;
  readonly seamFix: UsduSeamFixMode;
  readonly seamFixWidth: number;
  readonly seamFixPadding: number;
  readonly seamFixMaskBlur: number;
  /** force_uniform_tiles */
  readonly uniform: boolean;
}

/** [x1, y1, x2, y2), as the script's crop regions. */
export type Box = readonly [number, number, number, number];

/** The patch's round_length: the nearest multiple of 8 (Python's round, halves to even). */
export const roundLength = (v: number, multiple = 8): number => pyRound(v / multiple) * multiple;

/** The canvas the image is upscaled to (USDUpscaler.__init__ as patched). */
export function canvasSize(w: number, h: number, upscaleBy: number): { width: number; height: number } {
  return { width: roundLength(w * upscaleBy), height: roundLength(h * upscaleBy) };
}

/** get_factor of the script: 2 for 1, else the largest of 4, 3, 2 dividing n, else 0. */
function factorOf(n: number): number {
  if (n === 1) return 2;
  if (n % 4 === 0) return 4;
  if (n % 3 === 0) return 3;
  if (n % 2 === 0) return 2;
  return 0;
}

/** The script's get_factors: the upscaler passes (each an upscale by that factor) for the canvas. */
export function upscaleFactors(w: number, h: number, canvasW: number, canvasH: number): number[] {
  let scale = Math.ceil(Math.max(canvasW, canvasH) / Math.max(w, h));
  while (factorOf(scale) === 0) scale++;
  const out: number[] = [];
  let cur = 1;
  while (cur < scale) {
    const f = factorOf(Math.floor(scale / cur));
    out.push(f);
    cur *= f;
    if (f === 0) break;
  }
  return out;
}

export function tileGrid(
  canvasW: number,
  canvasH: number,
  p: Pick<UsduParams, 'tileWidth' | 'tileHeight'>,
): { rows: number; cols: number } {
  return { rows: Math.ceil(canvasH / p.tileHeight), cols: Math.ceil(canvasW / p.tileWidth) };
}

/** Redraw order: row by row (Linear), or the chessboard's white tiles row by row and then the black ones (Chess). */
export function redrawOrder(rows: number, cols: number, mode: UsduMode): [number, number][] {
  const all: [number, number][] = [];
  for (let yi = 0; yi < rows; yi++) for (let xi = 0; xi < cols; xi++) all.push([xi, yi]);
  if (mode === 'None') return [];
  if (mode === 'Linear') return all;
  const white = ([xi, yi]: [number, number]): boolean => (xi % 2 === 0) !== (yi > 0 && yi % 2 !== 0);
  return [...all.filter(white), ...all.filter((t) => !white(t))];
}

export type UsduStage = 'redraw' | 'half-tile-row' | 'half-tile-col' | 'intersection' | 'band-col' | 'band-row';

/** One img2img pass: where its mask is white, how much padding its crop gets, the mask blur, and the processing size (p.width, p.height). */
export interface UsduJob {
  readonly stage: UsduStage;
  readonly xi: number;
  readonly yi: number;
  /** The full-canvas mask before blurring. */
  mask(): Gray8;
  readonly padding: number;
  readonly blur: number;
  readonly procWidth: number;
  readonly procHeight: number;
}

/** PIL's draw.rectangle((x1, y1, x2, y2), fill="white"): both corners inclusive, clipped. */
export function rectangleMask(w: number, h: number, x1: number, y1: number, x2: number, y2: number): Gray8 {
  const m = gray8(w, h);
  for (let y = Math.max(0, y1); y <= Math.min(h - 1, y2); y++) m.data.fill(255, y * w + Math.max(0, x1), y * w + Math.min(w - 1, x2) + 1);
  return m;
}

function pasted(w: number, h: number, src: Gray8, x: number, y: number): Gray8 {
  const m = gray8(w, h);
  pasteGray(m, src, x, y);
  return m;
}

/** Every pass of a run on a canvas of W×H, in order: the redraw's tiles, then the seam fix's. */
export function usduJobs(W: number, H: number, p: UsduParams): UsduJob[] {
  const { rows, cols } = tileGrid(W, H, p);
  const tw = p.tileWidth;
  const th = p.tileHeight;
  const jobs: UsduJob[] = [];
  for (const [xi, yi] of redrawOrder(rows, cols, p.mode)) {
    jobs.push({
      stage: 'redraw',
      xi,
      yi,
      mask: () => rectangleMask(W, H, xi * tw, yi * th, xi * tw + tw, yi * th + th),
      padding: p.padding,
      blur: p.maskBlur,
      procWidth: roundLength(tw + p.padding),
      procHeight: roundLength(th + p.padding),
    });
  }
  const sf = { padding: p.seamFixPadding, blur: p.seamFixMaskBlur, procWidth: tw, procHeight: th };
  if (p.seamFix === 'Half Tile' || p.seamFix === 'Half Tile + Intersections') {
    const g = halfTileGradients(tw, th);
    for (let yi = 0; yi < rows - 1; yi++)
      for (let xi = 0; xi < cols; xi++)
        jobs.push({ stage: 'half-tile-row', xi, yi, mask: () => pasted(W, H, g.row, xi * tw, yi * th + Math.floor(th / 2)), ...sf });
    for (let yi = 0; yi < rows; yi++)
      for (let xi = 0; xi < cols - 1; xi++)
        jobs.push({ stage: 'half-tile-col', xi, yi, mask: () => pasted(W, H, g.col, xi * tw + Math.floor(tw / 2), yi * th), ...sf });
  }
  if (p.seamFix === 'Half Tile + Intersections') {
    const g = cornerGradient(tw, th);
    for (let yi = 0; yi < rows - 1; yi++)
      for (let xi = 0; xi < cols - 1; xi++)
        jobs.push({
          stage: 'intersection',
          xi,
          yi,
          mask: () => pasted(W, H, g, xi * tw + Math.floor(tw / 2), yi * th + Math.floor(th / 2)),
          ...sf,
          padding: 0,
        });
  }
  if (p.seamFix === 'Band Pass') {
    const w = p.seamFixWidth;
    const g = bandPassGradients(W, H, w);
    const band = { blur: 0, padding: p.seamFixPadding };
    for (let xi = 1; xi < cols; xi++)
      jobs.push({
        stage: 'band-col',
        xi,
        yi: 0,
        mask: () => pasted(W, H, g.col, xi * tw - Math.floor(w / 2), 0),
        ...band,
        procWidth: w + 2 * p.seamFixPadding,
        procHeight: H,
      });
    for (let yi = 1; yi < rows; yi++)
      jobs.push({
        stage: 'band-row',
        xi: 0,
        yi,
        mask: () => pasted(W, H, g.row, 0, yi * th - Math.floor(w / 2)),
        ...band,
        procWidth: W,
        procHeight: w + 2 * p.seamFixPadding,
      });
  }
  return jobs;
}

/** usdu_utils.get_crop_region: the mask's bounding box grown by `pad`, clamped, with the rectangle's extra pixel removed where not at the edge. */
export function cropRegionOf(bbox: Box | undefined, w: number, h: number, pad: number): Box {
  const [bx1, by1, bx2, by2] = bbox ?? [w, h, 0, 0];
  const x1 = Math.max(bx1 - pad, 0);
  const y1 = Math.max(by1 - pad, 0);
  let x2 = Math.min(bx2 + pad, w);
  let y2 = Math.min(by2 + pad, h);
  if (x2 < w) x2 -= 1;
  if (y2 < h) y2 -= 1;
  return [x1, y1, x2, y2];
}

/** usdu_utils.expand_crop: grow right by half the difference, then left, then right again (each clamped). */
export function expandCrop(region: Box, w: number, h: number, targetW: number, targetH: number): Box {
  let [x1, y1, x2, y2] = region;
  x2 = Math.min(x2 + Math.floor((targetW - (x2 - x1)) / 2), w);
  x1 = Math.max(x1 - (targetW - (x2 - x1)), 0);
  x2 = Math.min(x2 + (targetW - (x2 - x1)), w);
  y2 = Math.min(y2 + Math.floor((targetH - (y2 - y1)) / 2), h);
  y1 = Math.max(y1 - (targetH - (y2 - y1)), 0);
  y2 = Math.min(y2 + (targetH - (y2 - y1)), h);
  return [x1, y1, x2, y2];
}

/**
 * process_images' crop region and tile size for a mask's bounding box: with uniform tiles the crop
 * grows to the processing size's aspect ratio and the tile is the processing size; otherwise the
 * crop grows to multiples of 8 and that is the tile.
 */
export function tileRegion(
  bbox: Box | undefined,
  w: number,
  h: number,
  job: Pick<UsduJob, 'padding' | 'procWidth' | 'procHeight'>,
  uniform: boolean,
): { region: Box; tile: [number, number] } {
  const crop = cropRegionOf(bbox, w, h, job.padding);
  const cw = crop[2] - crop[0];
  const ch = crop[3] - crop[1];
  if (uniform) {
    const cropRatio = cw / ch;
    const pRatio = job.procWidth / job.procHeight;
    const [tw, th] = cropRatio > pRatio ? [cw, pyRound(cw / pRatio)] : [pyRound(ch * pRatio), ch];
    return { region: expandCrop(crop, w, h, tw, th), tile: [job.procWidth, job.procHeight] };
  }
  const tw = Math.ceil(cw / 8) * 8;
  const th = Math.ceil(ch / 8) * 8;
  return { region: expandCrop(crop, w, h, tw, th), tile: [tw, th] };
}
