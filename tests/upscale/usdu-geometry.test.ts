import { describe, expect, it } from 'vitest';
import {
  canvasSize,
  expandCrop,
  redrawOrder,
  tileGrid,
  tileRegion,
  upscaleFactors,
  usduJobs,
  type UsduParams,
} from '../../engine/image/usdu/geometry.ts';
import { getbbox } from '../../engine/image/usdu/pil-ops.ts';
import { UltimateSDUpscale, UltimateSDUpscaleCustomSample, UltimateSDUpscaleNoUpscale } from '../../nodes/upscale/ultimate-sd-upscale.ts';
import { batchJobs, cropCond } from '../../nodes/upscale/usdu-process.ts';
import type { Conditioning } from '../../engine/sampling/conditioning.ts';

/*
 * Ultimate SD Upscale's geometry against the A1111 script's rules worked by hand: canvas rounding,
 * upscaler factors, tile order, the crop regions with padding and their growth to the processing
 * size, and the seam-fix passes (counts from the script's calc_jobs_count, mask placement).
 */

const P: UsduParams = {
  tileWidth: 512,
  tileHeight: 512,
  padding: 32,
  maskBlur: 8,
  mode: 'Linear',
  seamFix: 'None',
  seamFixWidth: 64,
  seamFixPadding: 16,
  seamFixMaskBlur: 8,
  uniform: true,
};

describe('Ultimate SD Upscale geometry', () => {
  it('canvas: w·upscale_by rounded to the nearest multiple of 8 (halves to even); factors as get_factors', () => {
    expect(canvasSize(512, 512, 2)).toEqual({ width: 1024, height: 1024 });
    expect(canvasSize(509, 300, 1)).toEqual({ width: 512, height: 304 });
    // 100 · 1.5 = 150 → 150/8 = 18.75 → 19·8 = 152; 36 / 8 = 4.5 → 4 (even) → 32.
    expect(canvasSize(100, 24, 1.5)).toEqual({ width: 152, height: 32 });
    expect(upscaleFactors(512, 512, 1024, 1024)).toEqual([2]);
    expect(upscaleFactors(512, 512, 512, 512)).toEqual([]);
    expect(upscaleFactors(509, 300, 512, 304)).toEqual([2]);
    expect(upscaleFactors(100, 100, 400, 400)).toEqual([4]);
    expect(upscaleFactors(100, 100, 300, 300)).toEqual([3]);
    // ceil(5) has no factor: 6 = 3 · 2.
    expect(upscaleFactors(100, 100, 500, 500)).toEqual([3, 2]);
    expect(upscaleFactors(100, 100, 800, 800)).toEqual([4, 2]);
  });

  it('grid and order: ceil(canvas / tile); Linear row by row; Chess white squares first, then black', () => {
    expect(tileGrid(1100, 600, P)).toEqual({ rows: 2, cols: 3 });
    expect(redrawOrder(2, 3, 'Linear')).toEqual([
      [0, 0],
      [1, 0],
      [2, 0],
      [0, 1],
      [1, 1],
      [2, 1],
    ]);
    const chess = redrawOrder(3, 3, 'Chess');
    expect(chess).toEqual([
      [0, 0],
      [2, 0],
      [1, 1],
      [0, 2],
      [2, 2],
      [1, 0],
      [0, 1],
      [2, 1],
      [1, 2],
    ]);
    // No two tiles of one colour share an edge.
    const first = chess.slice(0, 5);
    for (const [x, y] of first) for (const [u, v] of first) expect(Math.abs(x - u) + Math.abs(y - v)).not.toBe(1);
    expect(redrawOrder(3, 3, 'None')).toEqual([]);
  });

  it('redraw crops: the inclusive rectangle plus padding, one pixel less where not at the edge, grown to the tile ratio', () => {
    const jobs = usduJobs(1024, 1024, P);
    expect(jobs.map((j) => [j.xi, j.yi])).toEqual([
      [0, 0],
      [1, 0],
      [0, 1],
      [1, 1],
    ]);
    const regions = jobs.map((j) => tileRegion(getbbox(j.mask()), 1024, 1024, j, true));
    expect(jobs[0].procWidth).toBe(544);
    expect(regions[0]).toEqual({ region: [0, 0, 544, 544], tile: [544, 544] });
    expect(regions[1]).toEqual({ region: [480, 0, 1024, 544], tile: [544, 544] });
    expect(regions[3]).toEqual({ region: [480, 480, 1024, 1024], tile: [544, 544] });
    // The 88-pixel remainder column of a 600-wide canvas: crop [480, 600) × [0, 512) (ratio 120:512) grows to
    // the 1:1 processing ratio at its height, 512 wide, all of it leftwards since the right edge is the canvas's.
    const narrow = usduJobs(600, 512, P);
    const r = tileRegion(getbbox(narrow[1].mask()), 600, 512, narrow[1], true);
    expect(r).toEqual({ region: [88, 0, 600, 512], tile: [544, 544] });
    // Non-uniform tiles: the crop rounded up to multiples of 8 and used as the tile.
    const nu = tileRegion(getbbox(narrow[1].mask()), 600, 512, narrow[1], false);
    expect(nu).toEqual({ region: [480, 0, 600, 512], tile: [120, 512] });
  });

  it('expand_crop: half the growth to the right, the rest to the left, then right again, clamped', () => {
    expect(expandCrop([10, 10, 20, 20], 100, 100, 30, 14)).toEqual([0, 8, 30, 22]);
    expect(expandCrop([90, 0, 100, 10], 100, 10, 20, 20)).toEqual([80, 0, 100, 10]);
  });

  it('seam-fix passes: counts as calc_jobs_count, masks where the script pastes them', () => {
    const sf = (seamFix: UsduParams['seamFix']): ReturnType<typeof usduJobs> =>
      usduJobs(1536, 1024, { ...P, mode: 'None', tileWidth: 512, tileHeight: 512, seamFix });
    const rows = 2;
    const cols = 3;
    expect(sf('Band Pass').length).toBe(rows + cols - 2);
    expect(sf('Half Tile').length).toBe(rows * (cols - 1) + (rows - 1) * cols);
    expect(sf('Half Tile + Intersections').length).toBe(rows * (cols - 1) + (rows - 1) * cols + (rows - 1) * (cols - 1));
    const half = sf('Half Tile');
    const row = half.find((j) => j.stage === 'half-tile-row' && j.xi === 1)!;
    // The row gradient sits at (512, 256): zero above 256 and past 1024 in x, brightest around the seam at y = 512.
    const m = row.mask();
    const bb = getbbox(m)!;
    expect(bb[0]).toBe(512);
    expect(bb[2]).toBe(1024);
    expect(bb[1]).toBeGreaterThanOrEqual(256);
    expect(bb[3]).toBeLessThanOrEqual(768);
    expect(m.data[511 * 1536 + 700]).toBeGreaterThan(240);
    expect(row.procWidth).toBe(512);
    expect(row.blur).toBe(8);
    const corner = sf('Half Tile + Intersections').find((j) => j.stage === 'intersection')!;
    expect(corner.padding).toBe(0);
    expect(corner.mask().data[512 * 1536 + 512]).toBe(255);
    const band = sf('Band Pass');
    expect(band.map((j) => [j.stage, j.procWidth, j.procHeight, j.blur])).toEqual([
      ['band-col', 96, 1024, 0],
      ['band-col', 96, 1024, 0],
      ['band-row', 1536, 96, 0],
    ]);
    const colBox = getbbox(band[1].mask())!;
    expect(colBox[0]).toBeGreaterThanOrEqual(1024 - 32);
    expect(colBox[2]).toBeLessThanOrEqual(1024 + 32);
  });

  it('redraw batches: batch_size tiles per sampling call, split at the chess colour change; seam-fix passes alone', () => {
    const jobs = usduJobs(1536, 1536, { ...P, mode: 'Chess', seamFix: 'Half Tile' });
    const groups = batchJobs(jobs, 2, 'Chess');
    const redraw = groups.filter((g) => g[0].stage === 'redraw').map((g) => g.map((j) => `${j.xi}${j.yi}`));
    expect(redraw).toEqual([['00', '20'], ['11', '02'], ['22'], ['10', '01'], ['21', '12']]);
    expect(groups.filter((g) => g[0].stage !== 'redraw').every((g) => g.length === 1)).toBe(true);
    expect(batchJobs(jobs, 1, 'Chess').every((g) => g.length === 1)).toBe(true);
  });

  it('crop_area: the area mapped from the input image to the canvas, cut to the region, moved to its origin; dropped with its strength outside', () => {
    const cond: Conditioning = [
      { cond: { shape: [1, 1, 1], data: new Float32Array(1) }, area: { x: 2, y: 0, width: 4, height: 4 }, strength: 0.7 },
    ];
    const crop = (region: readonly [number, number, number, number]): Conditioning =>
      cropCond(cond, [region], [64, 64], [128, 128], [80, 80], 'positive');
    // Area pixels (16, 0)–(48, 32) on the 64² input → (32, 0)–(96, 64) on the 128² canvas.
    expect(crop([0, 0, 80, 80])[0].area).toEqual({ height: 8, width: 6, y: 0, x: 4 });
    expect(crop([40, 8, 120, 100])[0].area).toEqual({ height: 7, width: 7, y: 0, x: 0 });
    const outside = crop([96, 96, 128, 128])[0];
    expect(outside.area).toBeUndefined();
    expect(outside.strength).toBeUndefined();
  });

  it('crop_mask: a mask entry gets its mask cut to the first region and sized to the tile (areas too); text and strength stay', () => {
    const mask = { shape: [1, 16, 16], data: Float32Array.from({ length: 256 }, (_, i) => (i % 16 >= 8 ? 1 : 0)) };
    const cond: Conditioning = [{ cond: { shape: [1, 1, 1], data: new Float32Array(1) }, mask, maskStrength: 0.5, setAreaToBounds: true }];
    // Two regions (a batch): the port crops masks to the first only.
    const [e] = cropCond(
      cond,
      [
        [0, 0, 64, 64],
        [64, 0, 128, 64],
      ],
      [64, 64],
      [128, 128],
      [64, 64],
      'negative',
    );
    expect(e.mask!.shape).toEqual([1, 64, 64]);
    expect([e.maskStrength, e.setAreaToBounds, e.cond]).toEqual([0.5, true, cond[0].cond]);
    // The 16² mask is 1 on its right half, from x = 64 on the 128² canvas: the left 64² region is 0 up to its last four columns,
    // where BICUBIC blends across the edge (its negative lobe further left clips to 0).
    const row = Array.from(e.mask!.data.subarray(0, 64));
    expect(row.slice(0, 60).every((v) => v === 0)).toBe(true);
    const [right] = cropCond(cond, [[64, 0, 128, 64]], [64, 64], [128, 128], [64, 64], 'negative');
    expect(Array.from(right.mask!.data.subarray(64 * 10 + 4, 64 * 10 + 64)).every((v) => v === 1)).toBe(true);
  });

  it("the three nodes' inputs in the port's order (USDU_base_inputs, NoUpscale's removals and rename, CustomSample's optionals)", () => {
    const base = [
      'image',
      'model',
      'positive',
      'negative',
      'vae',
      'upscale_by',
      'seed',
      'steps',
      'cfg',
      'sampler_name',
      'scheduler',
      'denoise',
    ];
    const tiles = ['mode_type', 'tile_width', 'tile_height', 'mask_blur', 'tile_padding', 'seam_fix_mode', 'seam_fix_denoise'];
    const rest = ['seam_fix_width', 'seam_fix_mask_blur', 'seam_fix_padding', 'force_uniform_tiles', 'tiled_decode', 'batch_size'];
    expect(Object.keys(UltimateSDUpscale.inputs?.required ?? {})).toEqual([...base, 'upscale_model', ...tiles, ...rest]);
    expect(Object.keys(UltimateSDUpscaleNoUpscale.inputs?.required ?? {})).toEqual([
      'upscaled_image',
      ...base.slice(1).filter((n) => n !== 'upscale_by'),
      ...tiles,
      ...rest,
    ]);
    expect(Object.keys(UltimateSDUpscaleCustomSample.inputs?.required ?? {})).toEqual([...base, ...tiles, ...rest]);
    expect(Object.keys(UltimateSDUpscaleCustomSample.inputs?.optional ?? {})).toEqual(['upscale_model', 'custom_sampler', 'custom_sigmas']);
  });
});
