import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../engine/core/tensor.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import type { OrtVae } from '../../engine/models/ort-vae.ts';
import { TiledVae } from '../../engine/models/tiled-vae/tiled-vae.ts';
import { lcg, makeTiny, relErr } from '../models-onnx/tiny.ts';

/* The Tiled VAE with one tile on the tiny SD1 VAE: the untiled ONNX VAE's result, decoder and encoder. */

const quiet = { info: () => {}, warn: () => {}, error: () => {} };

describe('Tiled VAE on the tiny SD1 VAE', () => {
  it('a tile covering the image equals the untiled ONNX VAE (decoder and encoder)', async () => {
    const tiny = await makeTiny(7);
    const m = new ModelManager({ cacheDir: join(tiny.dir, 'cache'), device: 'cpu', log: quiet });
    const vae = (await m.loadCheckpoint(tiny.file)).vae as OrtVae;
    const t = new TiledVae(m.runtime, { cfg: vae.cfg, weights: vae.weights!, hash: vae.id.slice(4) });
    const lat: Tensor = { shape: [1, 4, 16, 16], data: lcg(1024, 3, 2) };
    const plain = await vae.decodeRaw(lat);
    expect(relErr((await t.decodeRaw(lat, { tileSize: 512, fast: false })).data, plain.data)).toBeLessThan(1e-5);
    const px: Tensor = { shape: [1, 3, 128, 128], data: lcg(3 * 128 * 128, 4) };
    expect(relErr((await t.encodeRaw(px, { tileSize: 512, fast: false })).data, (await vae.encodeRaw(px)).data)).toBeLessThan(1e-5);
  }, 120_000);
});
