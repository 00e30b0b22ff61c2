import { assembleOneEncoder } from '../assemble-shared.ts';
import type { AssembleContext, CheckpointParts, ModelFamily } from '../family.ts';
import { sd1Weights } from '../sd1/weight-views.ts';
import type { Sd2Config } from './config.ts';
import { sd2Parts } from './parts.ts';

/**
 * MODEL, CLIP and VAE handles of an SD2 checkpoint, as SD1's assembly makes them (same ids, patching
 * and VAE), with the CLIP handle over the open_clip part: pad 0, layer −2 by default, pooled output
 * through text_projection.
 */
export function assembleSd2(family: ModelFamily<Sd2Config>, config: Sd2Config, ctx: AssembleContext): CheckpointParts<Sd2Config> {
  const ws = sd1Weights(ctx.source);
  const [encoder] = family.textEncoders(config);
  if (!encoder) throw new Error(`${family.name} declares no text encoder`);
  return assembleOneEncoder(family, config, ctx, ws, sd2Parts(config, ws, ctx), {
    spec: encoder,
    numLayers: config.clip.layers,
    hiddenSize: config.clip.width,
    vocabSize: config.clip.vocabSize,
    padToken: encoder.tokenizer.padToken === 'eos' ? undefined : encoder.tokenizer.padToken,
    projectedPooled: encoder.pooled === 'projected' && config.clip.projectionDim !== undefined,
  });
}
