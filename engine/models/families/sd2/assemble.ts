import { NO_PATCHES } from '../../patching/patch-set.ts';
import { loadClipTokenizer } from '../../../text/clip-tokenizer.ts';
import { EmbeddingLibrary } from '../../../text/embeddings.ts';
import { assertTokenizerFits, singleClip, unetAssembly } from '../assemble-shared.ts';
import type { AssembleContext, CheckpointParts, ModelFamily } from '../family.ts';
import { ldmVaeHandle } from '../ldm-vae.ts';
import { sd1Weights } from '../sd1/weight-views.ts';
import type { Sd2Config } from './config.ts';
import { sd2Parts } from './parts.ts';

/**
 * MODEL, CLIP and VAE handles of an SD2 checkpoint, as SD1's assembly makes them (same ids, patching
 * and VAE), with the CLIP handle over the open_clip part: pad 0, layer −2 by default, pooled output
 * through text_projection.
 */
export function assembleSd2(family: ModelFamily<Sd2Config>, config: Sd2Config, ctx: AssembleContext): CheckpointParts<Sd2Config> {
  const { file, hash, runtime } = ctx;
  const ws = sd1Weights(ctx.source);
  const parts = sd2Parts(config, ws, ctx);
  const [encoder] = family.textEncoders(config);
  if (!encoder) throw new Error(`${family.name} declares no text encoder`);
  const tokenizer = loadClipTokenizer({ modelPath: file, paths: ctx.paths, vocabulary: encoder.tokenizer.vocabulary, bundled: true });
  assertTokenizerFits(file, tokenizer, config.clip.vocabSize, 'encoder');
  const padToken = encoder.tokenizer.padToken === 'eos' ? undefined : encoder.tokenizer.padToken;
  const embeddings = ctx.paths ? new EmbeddingLibrary(ctx.paths, config.clip.width, (m) => ctx.log?.warn(m)) : undefined;
  const asm = unetAssembly(family, config, ctx, ws, parts.unet);
  const makeClip = singleClip(ctx, ws, asm, parts.clip, {
    tokenizer,
    numLayers: config.clip.layers,
    hiddenSize: config.clip.width,
    defaultLayer: encoder.defaultLayer,
    padToken,
    projectedPooled: encoder.pooled === 'projected' && config.clip.projectionDim !== undefined,
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
