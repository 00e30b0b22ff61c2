import { PrefixedWeightSource, type WeightSource } from '../../../core/weights.ts';
import type { PartSpec } from '../../runtime/part.ts';
import type { OpenClipConfig } from './config.ts';
import { buildOpenClipGraph } from './graph.ts';

/**
 * An open_clip text encoder of a checkpoint as a part: its weights are `checkpoint` under `prefix`
 * (`cond_stage_model.model.` for SD2, `conditioner.embedders.1.model.` for SDXL's G), which is also
 * the patch prefix, so LoRA targets are the checkpoint's own names. `id` tells encoders of one file
 * apart (`clip`, `clip_g`); `layerNormHidden` is ComfyUI's layer_norm_hidden_state for the encoder.
 */
export function openClipPart(opts: {
  id: string;
  cfg: OpenClipConfig;
  checkpoint: WeightSource;
  prefix: string;
  hash: string;
  file?: string;
  layerNormHidden: boolean;
}): PartSpec {
  const { cfg, layerNormHidden } = opts;
  return {
    id: opts.id,
    hash: opts.hash,
    source: opts.file,
    prefix: opts.prefix,
    weights: new PrefixedWeightSource(opts.checkpoint, opts.prefix),
    build: (w, o) => buildOpenClipGraph(cfg, w, o, { layerNormHidden }),
  };
}
