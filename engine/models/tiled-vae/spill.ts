import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readAt } from '../../core/safe-path.ts';
import type { Tensor } from '../../core/tensor.ts';
import type { TileArrays } from './tile-arrays.ts';

/**
 * Where the Tiled VAE keeps tiles waiting at a GroupNorm: in memory up to a budget, beyond it in
 * files of a temporary folder (the extension moves them from VRAM to RAM for the same reason), so a
 * 4096² image needs the budget, one tile's work and the output, not two whole-image activations.
 * Files hold the float32 values as they are: what comes back is bit-identical.
 */

export interface Parked {
  readonly x: Tensor | { readonly shape: readonly number[]; readonly file: string };
  readonly res?: Tensor | { readonly shape: readonly number[]; readonly file: string };
}

const bytes = (t: Tensor | undefined): number => (t ? t.data.byteLength : 0);

export class TileSpill {
  private dir?: string;
  private held = 0;
  private n = 0;
  /** Bytes written to files so far. */
  written = 0;

  /** `arrays` takes back the arrays of tiles written out (the caller lets go of them) and gives arrays to read tiles into. */
  constructor(
    private readonly budget: number,
    private readonly arrays?: TileArrays,
  ) {}

  /** Keeps the tile in memory while the budget allows, else writes it out. */
  park(x: Tensor, res: Tensor | undefined): Parked {
    const size = bytes(x) + bytes(res);
    if (this.held + size <= this.budget) {
      this.held += size;
      return { x, res };
    }
    this.dir ??= mkdtempSync(join(tmpdir(), 'weft-tiled-vae-'));
    const out = (t: Tensor): { shape: readonly number[]; file: string } => {
      const file = join(this.dir!, `t${this.n++}.bin`);
      writeFileSync(file, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
      this.written += t.data.byteLength;
      return { shape: t.shape, file };
    };
    const parked = { x: out(x), res: res && out(res) };
    this.arrays?.give(x.data);
    if (res) this.arrays?.give(res.data);
    return parked;
  }

  /** The tile back in memory (its files removed). */
  take(p: Parked): { x: Tensor; res?: Tensor } {
    const back = (t: Parked['x']): Tensor => {
      if ('data' in t) {
        this.held -= t.data.byteLength;
        return t;
      }
      // Read straight into the tile's array: a Buffer read and then copied doubled the memory, half of it garbage.
      const n = t.shape.reduce((a, b) => a * b, 1);
      const data = this.arrays ? this.arrays.take(n) : new Float32Array(n);
      const bytes = new Uint8Array(data.buffer);
      const fd = openSync(t.file, 'r');
      try {
        if (readAt(fd, bytes, bytes.byteLength, 0) !== bytes.byteLength) throw new Error(`tiled VAE: ${t.file} is shorter than its tile`);
      } finally {
        closeSync(fd);
      }
      rmSync(t.file);
      return { shape: t.shape, data };
    };
    return { x: back(p.x), res: p.res && back(p.res) };
  }

  close(): void {
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = undefined;
  }
}
