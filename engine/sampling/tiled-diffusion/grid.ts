/**
 * The tile grid of ComfyUI-TiledDiffusion (tiled_diffusion.py: split_bboxes, init_grid_bbox,
 * gaussian_weights), in latent pixels. Kept apart from the wrapper so tests and the benchmark can
 * reproduce the grid without running a model.
 */

/** A tile: top-left corner and size in latent pixels (the package's BBox). */
export interface TileBox {
  readonly x: number;
  readonly y: number;
  readonly w: number;
  readonly h: number;
}

export type TiledDiffusionMethod = 'MultiDiffusion' | 'Mixture of Diffusers' | 'SpotDiffusion';

export interface TileGrid {
  /** Tiles in the order the package runs them (rows, then columns), cut into its batches. */
  readonly batches: readonly (readonly TileBox[])[];
  /** Tile size after clamping to the latent (the package's self.tile_w / self.tile_h). */
  readonly tileW: number;
  readonly tileH: number;
  /** [h·w] float32: how much each latent pixel is painted (tile count, or Σ Gaussian weights). */
  readonly weights: Float32Array;
  /** [tileH·tileW] float32 Gaussian weights of Mixture of Diffusers; undefined for the other methods. */
  readonly tileWeights?: Float32Array;
}

/** Python's ceildiv as the package writes it, -(big // -small); the 0/0 of a tile clamped to a latent no wider than the overlap is one tile. */
export function ceildiv(big: number, small: number): number {
  if (small === 0) {
    if (big === 0) return 1;
    throw new Error(`tile grid: ${big} / 0`);
  }
  return -Math.floor(big / -small);
}

/**
 * The package's gaussian_weights (from Mixture of Diffusers), float64 then float32. Its asymmetries
 * are kept: the x midpoint is (tile_w − 1)/2 but the y midpoint tile_h/2, and both axes divide by
 * tile_w² (so a tall tile is flatter across its height).
 */
export function gaussianWeights(tileW: number, tileH: number): Float32Array {
  const v = 0.01;
  const f = (x: number, mid: number): number => Math.exp((-(x - mid) * (x - mid)) / (tileW * tileW) / (2 * v)) / Math.sqrt(2 * Math.PI * v);
  const xs = Array.from({ length: tileW }, (_, x) => f(x, (tileW - 1) / 2));
  const ys = Array.from({ length: tileH }, (_, y) => f(y, tileH / 2));
  const out = new Float32Array(tileW * tileH);
  for (let y = 0; y < tileH; y++) for (let x = 0; x < tileW; x++) out[y * tileW + x] = ys[y] * xs[x];
  return out;
}

/** The package's split_bboxes: overlapping tiles spread evenly, the last one flush with the edge. */
export function splitBboxes(w: number, h: number, tileW: number, tileH: number, overlap: number): TileBox[] {
  const cols = ceildiv(w - overlap, tileW - overlap);
  const rows = ceildiv(h - overlap, tileH - overlap);
  const dx = cols > 1 ? (w - tileW) / (cols - 1) : 0;
  const dy = rows > 1 ? (h - tileH) / (rows - 1) : 0;
  const out: TileBox[] = [];
  for (let row = 0; row < rows; row++) {
    const y = Math.min(Math.trunc(row * dy), h - tileH);
    for (let col = 0; col < cols; col++) out.push({ x: Math.min(Math.trunc(col * dx), w - tileW), y, w: tileW, h: tileH });
  }
  return out;
}

export interface GridOptions {
  /** Latent size of the model call's input. */
  readonly w: number;
  readonly h: number;
  /** The node's tile size and overlap divided by the VAE's compression (8), unclamped. */
  readonly tileW: number;
  readonly tileH: number;
  readonly overlap: number;
  readonly tileBatchSize: number;
  readonly method: TiledDiffusionMethod;
}

/**
 * init_grid_bbox: the tile clamped to the latent, the overlap clamped to the unclamped tile less 4
 * (as the package does: a tile clamped to a small latent keeps the larger overlap), the tiles cut
 * into ceil(n / tile_batch_size) batches of equal size (the last one shorter).
 */
export function tileGrid(o: GridOptions): TileGrid {
  if (!(o.w >= 1 && o.h >= 1)) throw new Error(`tiled diffusion: the latent is ${o.w}x${o.h}`);
  if (!(o.tileW >= 1 && o.tileH >= 1))
    throw new Error(`tiled diffusion: a tile of ${o.tileW}x${o.tileH} latent pixels is empty (tile_width and tile_height are at least 16)`);
  if (!(o.tileBatchSize >= 1)) throw new Error(`tiled diffusion: tile_batch_size ${o.tileBatchSize} is below 1`);
  const tileW = Math.min(o.tileW, o.w);
  const tileH = Math.min(o.tileH, o.h);
  const overlap = Math.max(0, Math.min(o.overlap, Math.min(o.tileW, o.tileH) - 4));
  const boxes = splitBboxes(o.w, o.h, tileW, tileH, overlap);
  const tileWeights = o.method === 'Mixture of Diffusers' ? gaussianWeights(tileW, tileH) : undefined;
  const weights = new Float32Array(o.w * o.h);
  for (const b of boxes)
    for (let y = 0; y < b.h; y++)
      for (let x = 0; x < b.w; x++) {
        const i = (b.y + y) * o.w + b.x + x;
        weights[i] = Math.fround(weights[i] + (tileWeights ? tileWeights[y * tileW + x] : 1));
      }
  const numBatches = ceildiv(boxes.length, o.tileBatchSize);
  const bs = ceildiv(boxes.length, numBatches);
  const batches = Array.from({ length: numBatches }, (_, i) => boxes.slice(i * bs, (i + 1) * bs));
  return { batches, tileW, tileH, weights, tileWeights };
}
