import type { Tensor } from '../../../core/tensor.ts';
import type { ExtraCondEntry, ExtraCondInfo, PromptType } from '../../handles.ts';
import { timestepFrequencies } from '../sd1/timestep.ts';
import { SDXL_SIZE_EMBED, type SdxlConfig } from './config.ts';

/** The refiner's aesthetic score when an entry sets none (ComfyUI: 2.5 for the negative prompt, 6 otherwise). */
export const REFINER_AESTHETIC = { positive: 6, negative: 2.5 } as const;

/**
 * The size values of one entry in the order SDXL's `label_emb` was trained on (ComfyUI's
 * `SDXL.encode_adm`: height before width, crop_h before crop_w, then the target size; the refiner's
 * `SDXLRefiner.encode_adm`: the aesthetic score instead of the target). Absent width/height are the
 * latent's size ×8, as ComfyUI's `encode_model_conds` fills them in before encode_adm runs.
 */
export function sdxlSizeValues(kind: SdxlConfig['kind'], entry: ExtraCondEntry, info: ExtraCondInfo, promptType?: PromptType): number[] {
  const s = entry.size ?? {};
  const width = s.width ?? info.width * 8;
  const height = s.height ?? info.height * 8;
  const cropW = s.cropW ?? 0;
  const cropH = s.cropH ?? 0;
  if (kind === 'refiner') {
    const ascore = s.aestheticScore ?? (promptType === 'negative' ? REFINER_AESTHETIC.negative : REFINER_AESTHETIC.positive);
    return [height, width, cropH, cropW, ascore];
  }
  return [height, width, cropH, cropW, s.targetHeight ?? height, s.targetWidth ?? width];
}

/**
 * ComfyUI's `Timestep(256)` of each value (cos half then sin half, float32 as torch computes it),
 * concatenated: the part of `y` after the pooled text.
 */
export function embedSizes(values: readonly number[]): Float32Array {
  const half = SDXL_SIZE_EMBED / 2;
  const freqs = timestepFrequencies(SDXL_SIZE_EMBED);
  const out = new Float32Array(values.length * SDXL_SIZE_EMBED);
  values.forEach((v, k) => {
    const t = Math.fround(v);
    for (let i = 0; i < half; i++) {
      const arg = Math.fround(t * freqs[i]);
      out[k * SDXL_SIZE_EMBED + i] = Math.cos(arg);
      out[k * SDXL_SIZE_EMBED + half + i] = Math.sin(arg);
    }
  });
  return out;
}

/**
 * SDXL's `y` input for one conditioning entry: the pooled CLIP-G output followed by the embedded
 * size values, one row per batch item ([batch, pooledDim + n·256]: 2816 for the base, 2560 for the refiner).
 */
export function sdxlAdm(cfg: SdxlConfig, entry: ExtraCondEntry, info: ExtraCondInfo, promptType?: PromptType): Record<string, Tensor> {
  const pooled = entry.pooled;
  if (!pooled) throw new Error('SDXL conditioning needs the pooled text output (pooled_output); encode the prompt with the SDXL checkpoint\'s CLIP');
  if (pooled.data.length !== cfg.pooledDim) {
    throw new Error(`SDXL conditioning: the pooled text output has ${pooled.data.length} values, this model takes ${cfg.pooledDim} (was the prompt encoded by another model's CLIP?)`);
  }
  const sizes = embedSizes(sdxlSizeValues(cfg.kind, entry, info, promptType));
  const width = cfg.pooledDim + sizes.length;
  if (cfg.unet.admInChannels !== undefined && width !== cfg.unet.admInChannels) {
    throw new Error(`SDXL adm vector would be ${width} wide but the UNet's label_emb takes ${cfg.unet.admInChannels}`);
  }
  const row = new Float32Array(width);
  row.set(pooled.data);
  row.set(sizes, cfg.pooledDim);
  const data = new Float32Array(info.batch * width);
  for (let b = 0; b < info.batch; b++) data.set(row, b * width);
  return { y: { shape: [info.batch, width], data } };
}
