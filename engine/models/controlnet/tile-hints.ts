import { concatBatch, type Tensor } from '../../core/tensor.ts';
import { repeatToBatchSize } from '../../image/layout.ts';
import type { ControlTiles } from '../handles.ts';

/**
 * A control's hint cut per tile, as ComfyUI-TiledDiffusion's `process_controlnet` cuts `cond_hint`:
 * the hint resized for the whole input (as the control resizes it for an untiled input of that size),
 * rolled as the input was rolled (SpotDiffusion), cropped to each tile's rectangle × `scale`, and the
 * control's encoder run on that crop (so it sees the tile's own borders). Each tile's outputs have
 * its rows repeated to its share of the batch (repeat_to_batch_size) and the tiles are concatenated
 * in order. ControlNets (one encoded hint) and T2I-Adapters (one feature per level) share it.
 */

export interface TileHintSource {
  /** The hint resized for a whole input of `w` × `h` latent pixels. */
  resized(w: number, h: number): Tensor;
  /** The control's encoder on one tile's hint pixels: one tensor per output. */
  encode(hint: Tensor, signal?: AbortSignal): Promise<Tensor[]>;
}

type Box = ControlTiles['boxes'][number];

export class TileHints {
  private whole?: { key: string; hint: Tensor };
  /** Encoded tiles of unrolled inputs (rolled ones change every step, so they are not kept). */
  private readonly encoded = new Map<string, Promise<Tensor[]>>();

  constructor(
    private readonly source: TileHintSource,
    /** Hint pixels per latent pixel. */
    private readonly scale: number,
  ) {}

  /** The outputs for a batch of `rows` rows over `tiles` (tile-major). */
  async outputs(tiles: ControlTiles, rows: number, signal?: AbortSignal): Promise<Tensor[]> {
    const per = rows / tiles.boxes.length;
    if (!Number.isInteger(per)) throw new Error(`a tile batch of ${rows} rows cannot be shared by ${tiles.boxes.length} tiles`);
    const rolled = tiles.roll !== undefined && (tiles.roll.dy !== 0 || tiles.roll.dx !== 0);
    const perTile: Tensor[][] = [];
    for (const box of tiles.boxes) {
      const key = `${tiles.full.h}x${tiles.full.w}:${box.y},${box.x},${box.h},${box.w}`;
      let hit = rolled ? undefined : this.encoded.get(key);
      if (!hit) {
        hit = this.source.encode(this.hint(tiles, box), signal);
        if (!rolled) {
          hit.catch(() => this.encoded.delete(key));
          this.encoded.set(key, hit);
        }
      }
      perTile.push((await hit).map((t) => repeatToBatchSize(t, per)));
    }
    return perTile[0].map((_t, k) => concatBatch(perTile.map((outs) => outs[k])));
  }

  /** One tile's hint pixels: the resized hint, rolled by the input's roll, cropped to the box. */
  hint(tiles: ControlTiles, box: Box): Tensor {
    const s = this.scale;
    const key = `${tiles.full.h}x${tiles.full.w}`;
    if (this.whole?.key !== key) this.whole = { key, hint: this.source.resized(tiles.full.w, tiles.full.h) };
    const src = this.whole.hint;
    const [b, c, H, W] = src.shape;
    const dy = (tiles.roll?.dy ?? 0) * s;
    const dx = (tiles.roll?.dx ?? 0) * s;
    const h = box.h * s;
    const w = box.w * s;
    const data = new Float32Array(b * c * h * w);
    const mod = (v: number, n: number): number => ((v % n) + n) % n;
    for (let p = 0; p < b * c; p++)
      for (let yy = 0; yy < h; yy++) {
        const sy = mod(box.y * s + yy - dy, H);
        for (let xx = 0; xx < w; xx++) data[(p * h + yy) * w + xx] = src.data[(p * H + sy) * W + mod(box.x * s + xx - dx, W)];
      }
    return { shape: [b, c, h, w], data };
  }
}
