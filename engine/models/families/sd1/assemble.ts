import type { Sd1Config } from './config.ts';
import { sd1Weights } from './detect.ts';
import { assembleOneEncoder } from '../assemble-shared.ts';
import type { AssembleContext, CheckpointParts, ModelFamily, TextEncoderSpec } from '../family.ts';
import { sd1Parts } from './parts.ts';

/**
 * MODEL, CLIP and VAE handles of an SD1-architecture checkpoint. Handles are cheap views: a patched
 * MODEL or CLIP (LoRA, merge) is the same assembly with other patches, and its part runs as a patched
 * variant of the same build (see PartsRuntime.runner). Ids are `<family>:<hash>[+<patches>]`,
 * `clip:<hash>…` and `vae:<hash>`: the executor's cache and the build cache go by them.
 */
export function assembleSd1(family: ModelFamily<Sd1Config>, config: Sd1Config, ctx: AssembleContext): CheckpointParts<Sd1Config> {
  const ws = sd1Weights(ctx.source);
  const [encoder] = family.textEncoders(config);
  assertOrtClipRuns(encoder, family);
  return assembleOneEncoder(family, config, ctx, ws, sd1Parts(config, ws, ctx), {
    spec: encoder,
    numLayers: config.clip.numLayers,
    hiddenSize: config.clip.hiddenSize,
    vocabSize: config.clip.vocabSize,
  });
}

/** OrtClip encodes as SD1's CLIP-L does; an encoder that differs in how it pads, normalises or pools needs more than it. */
function assertOrtClipRuns(e: TextEncoderSpec | undefined, family: ModelFamily<Sd1Config>): asserts e is TextEncoderSpec {
  if (!e) throw new Error(`${family.name} declares no text encoder`);
  if (e.tokenizer.padToken !== 'eos' || !e.layerNormHiddenState || e.pooled !== 'eos' || e.tokenizer.maxLength !== 77) {
    throw new Error(`${family.name}: text encoder '${e.part}' pads, normalises or pools in a way the CLIP handle does not implement yet`);
  }
}
