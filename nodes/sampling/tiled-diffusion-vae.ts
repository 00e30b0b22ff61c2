import type { Latent } from '../../engine/core/tensor.ts';
import type { VaeHandle } from '../../engine/models/handles.ts';
import { cropToMultiple, imageToModel, modelToImage, OrtVae } from '../../engine/models/ort-vae.ts';
import { TiledVae } from '../../engine/models/tiled-vae/tiled-vae.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import { defineNode } from '../../engine/registry/types.ts';
import { modelManager } from '../model/services.ts';

/**
 * ComfyUI-TiledDiffusion's Tiled VAE nodes (tiled_vae.py, the A1111 extension's Tiled VAE): GroupNorm
 * statistics shared across tiles, fast mode and the encoder's colour fix. Defaults are the package's
 * for a machine without CUDA (encoder tile 512, decoder tile 64·8); the package raises them by VRAM.
 */

const tiledVaes = new WeakMap<VaeHandle, TiledVae>();

function tiledVae(vae: VaeHandle, ctx: NodeContext, node: string): TiledVae {
  let t = tiledVaes.get(vae);
  if (t) return t;
  if (!(vae instanceof OrtVae) || !vae.weights || !vae.id.startsWith('vae:'))
    throw new Error(
      `${node}: this VAE's weights are not readable by Weft (an exported ONNX VAE?); the Tiled VAE runs the VAE layer by layer from a checkpoint or VAE file`,
    );
  t = new TiledVae(modelManager(ctx).runtime, { cfg: vae.cfg, weights: vae.weights, hash: vae.id.slice(4) });
  tiledVaes.set(vae, t);
  return t;
}

export const VAEEncodeTiled_TiledDiffusion = defineNode({
  name: 'VAEEncodeTiled_TiledDiffusion',
  displayName: 'Tiled VAE Encode',
  category: '_for_testing',
  inputs: {
    required: {
      pixels: { type: 'IMAGE' },
      vae: { type: 'VAE' },
      tile_size: { type: 'INT', default: 512, min: 256, max: 4096, step: 16 },
      fast: { type: 'BOOLEAN', default: true },
      color_fix: { type: 'BOOLEAN', default: true },
    },
  },
  outputs: [{ type: 'LATENT', name: 'LATENT' }] as const,
  async run(i, ctx) {
    const t = tiledVae(i.vae, ctx, 'VAEEncodeTiled_TiledDiffusion');
    const px = imageToModel(cropToMultiple(i.pixels, 8));
    const samples = await t.encodeRaw(px, {
      tileSize: i.tile_size,
      fast: i.fast,
      colorFix: i.color_fix,
      signal: ctx.signal,
      onProgress: (d, n) => ctx.progress(d, n),
    });
    const latent: Latent = { samples };
    return [latent];
  },
});

export const VAEDecodeTiled_TiledDiffusion = defineNode({
  name: 'VAEDecodeTiled_TiledDiffusion',
  displayName: 'Tiled VAE Decode',
  category: '_for_testing',
  inputs: {
    required: {
      samples: { type: 'LATENT' },
      vae: { type: 'VAE' },
      tile_size: { type: 'INT', default: 64 * 8, min: 48 * 8, max: 4096, step: 16 },
      fast: { type: 'BOOLEAN', default: true },
    },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }] as const,
  async run(i, ctx) {
    const t = tiledVae(i.vae, ctx, 'VAEDecodeTiled_TiledDiffusion');
    const raw = await t.decodeRaw(i.samples.samples, {
      tileSize: i.tile_size,
      fast: i.fast,
      signal: ctx.signal,
      onProgress: (d, n) => ctx.progress(d, n),
    });
    return [modelToImage(raw)];
  },
});

export const nodes = [VAEEncodeTiled_TiledDiffusion, VAEDecodeTiled_TiledDiffusion];
