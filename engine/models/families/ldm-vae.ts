import type * as ort from 'onnxruntime-node';
import type { WeightSource } from '../../core/weights.ts';
import type { VaeConfig } from './sd1/config.ts';
import { buildVaeDecoderGraph, buildVaeEncoderGraph } from './sd1/graphs/vae-graph.ts';
import { OrtVae } from '../ort-vae.ts';
import type { PartSpec } from '../runtime/part.ts';
import type { PartsRuntime } from '../runtime/parts-runtime.ts';

/**
 * The LDM autoencoder (`AutoencoderKL`) as two parts. SD1, SD2 and SDXL share its architecture, so a
 * family and a standalone VAE file both build it from here.
 */

/** Where a single-file checkpoint keeps the VAE's weights. */
export const LDM_VAE_PREFIX = 'first_stage_model.';

export interface LdmVaeSource {
  cfg: VaeConfig;
  /** Its weights under bare LDM keys (`decoder.conv_in.weight`, ...). */
  weights: WeightSource;
  /** Content hash of the file they came from. */
  hash: string;
  /** Key prefix of those weights in a checkpoint (`first_stage_model.`). */
  prefix: string;
  file?: string;
}

export function ldmVaeParts(v: LdmVaeSource): { vae_decoder: PartSpec; vae_encoder: PartSpec } {
  const common = { hash: v.hash, weights: v.weights, prefix: v.prefix, source: v.file };
  return {
    vae_decoder: { id: 'vae_decoder', ...common, build: (w, o) => buildVaeDecoderGraph(v.cfg, w, o) },
    vae_encoder: { id: 'vae_encoder', ...common, build: (w, o) => buildVaeEncoderGraph(v.cfg, w, o) },
  };
}

/** The VAE handle over the two parts (`vae:<hash>`). */
export function ldmVaeHandle(runtime: PartsRuntime, v: LdmVaeSource): OrtVae {
  const parts = ldmVaeParts(v);
  const dec = runtime.runner(parts.vae_decoder);
  const enc = runtime.runner(parts.vae_encoder);
  return new OrtVae({
    id: `vae:${v.hash}`,
    cfg: v.cfg,
    weights: v.weights,
    decoder: { run: (f) => dec(f as Record<string, ort.Tensor>) },
    encoder: { run: (f) => enc(f as Record<string, ort.Tensor>) },
  });
}
