import { ModelManager } from '../../engine/models/manager.ts';
import type { WeightsMode } from '../../engine/onnx/resident-half.ts';

const quiet = { info: () => {}, warn: () => {}, error: () => {} };

export interface PartOutputs {
  /** CLIP hidden and pooled, the UNet, the VAE decode and encode. */
  outputs: Float32Array[];
  builds: number;
}

/**
 * Every part's output for fixed inputs from a fresh manager over `cacheDir`, loading the SDXL
 * checkpoint `file` (compact or float32 cache, float32 or 16-bit resident weights, ORT's pre-packing on or off).
 */
export async function sdxlPartOutputs(
  file: string,
  cacheDir: string,
  opts: { compact: boolean; weights: WeightsMode; prepack?: boolean },
): Promise<PartOutputs> {
  const m = new ModelManager({ cacheDir, device: 'cpu', log: quiet, weights: opts.weights, prepack: opts.prepack });
  if (!opts.compact) m.cache.storeHalf = m.cache.linkSource = false;
  const p = await m.loadCheckpoint(file);
  const clip = await p.clip.encodeText('a photograph of an astronaut');
  const D = clip.cond.shape[2];
  const x = { shape: [2, 4, 8, 8], data: new Float32Array(512).map((_, i) => Math.sin(i * 0.7)) };
  const context = { shape: [2, 77, D], data: new Float32Array(2 * 77 * D).map((_, i) => Math.cos(i * 0.3)) };
  const y = p.model.extraConds!({ cond: clip.cond, pooled: clip.pooled }, { batch: 2, height: 64, width: 64 }).y;
  const unet = await p.model.unet.run({ x, timesteps: new Float32Array([500, 20]), context, extra: { y } });
  const image = await p.vae.decode({ shape: [1, 4, 8, 8], data: x.data.slice(0, 256) });
  const latent = await p.vae.encode(image);
  const builds = m.stats().builds;
  await m.pool.clear();
  return { outputs: [clip.cond.data, clip.pooled!.data, unet.data, image.data, latent.data], builds };
}
