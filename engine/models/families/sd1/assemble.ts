import type { Sd1Config } from './config.ts';
import { sd1Weights } from './detect.ts';
import { NO_PATCHES } from '../../patching/patch-set.ts';
import { loadClipTokenizer } from '../../../text/clip-tokenizer.ts';
import { EmbeddingLibrary } from '../../../text/embeddings.ts';
import { assertTokenizerFits, singleClip, unetAssembly } from '../assemble-shared.ts';
import type { AssembleContext, CheckpointParts, ModelFamily, TextEncoderSpec } from '../family.ts';
import { ldmVaeHandle } from '../ldm-vae.ts';
import { sd1Parts } from './parts.ts';

/**
 * MODEL, CLIP and VAE handles of an SD1-architecture checkpoint. Handles are cheap views: a patched
 * MODEL or CLIP (LoRA, merge) is the same assembly with other patches, and its part runs as a patched
 * variant of the same build (see PartsRuntime.runner). Ids are `<family>:<hash>[+<patches>]`,
 * `clip:<hash>…` and `vae:<hash>`: the executor's cache and the build cache go by them.
 */
export function assembleSd1(family: ModelFamily<Sd1Config>, config: Sd1Config, ctx: AssembleContext): CheckpointParts<Sd1Config> {
  const { file, hash, runtime } = ctx;
  const ws = sd1Weights(ctx.source);
  const parts = sd1Parts(config, ws, ctx);
  const [encoder] = family.textEncoders(config);
  assertOrtClipRuns(encoder, family);
  const tokenizer = loadClipTokenizer({ modelPath: file, paths: ctx.paths, vocabulary: encoder.tokenizer.vocabulary, bundled: true });
  assertTokenizerFits(file, tokenizer, config.clip.vocabSize, 'encoder');
  const embeddings = ctx.paths ? new EmbeddingLibrary(ctx.paths, config.clip.hiddenSize, (m) => ctx.log?.warn(m)) : undefined;
  const asm = unetAssembly(family, config, ctx, ws, parts.unet);
  const makeClip = singleClip(ctx, ws, asm, parts.clip, {
    tokenizer,
    numLayers: config.clip.numLayers,
    hiddenSize: config.clip.hiddenSize,
    defaultLayer: encoder.defaultLayer,
    embeddings,
  });
  return {
    family: family.id,
    config,
    model: asm.makeModel(NO_PATCHES),
    clip: makeClip(NO_PATCHES),
    vae: ldmVaeHandle(runtime, { cfg: config.vae, weights: parts.vae_decoder.weights, hash, prefix: parts.vae_decoder.prefix, file }),
  };
}

/** OrtClip encodes as SD1's CLIP-L does; an encoder that differs in how it pads, normalises or pools needs more than it. */
function assertOrtClipRuns(e: TextEncoderSpec | undefined, family: ModelFamily<Sd1Config>): asserts e is TextEncoderSpec {
  if (!e) throw new Error(`${family.name} declares no text encoder`);
  if (e.tokenizer.padToken !== 'eos' || !e.layerNormHiddenState || e.pooled !== 'eos' || e.tokenizer.maxLength !== 77) {
    throw new Error(`${family.name}: text encoder '${e.part}' pads, normalises or pools in a way the CLIP handle does not implement yet`);
  }
}
