import type { ClipHandle, ExtraConds, ModelHandle, WeightPatching } from '../../handles.ts';
import { OrtClip } from '../../ort-clip.ts';
import { OrtUnet } from '../../ort-unet.ts';
import { applyEntries, NO_PATCHES, patchMapHash, type PatchMap } from '../../patching/patch-set.ts';
import { ownPatches } from '../../runtime/part.ts';
import { loadClipTokenizer } from '../../../text/clip-tokenizer.ts';
import { EmbeddingLibrary } from '../../../text/embeddings.ts';
import type { AssembleContext, CheckpointParts, ModelFamily } from '../family.ts';
import { ldmVaeHandle } from '../ldm-vae.ts';
import { unetSkipCount } from '../sd1/graphs/unet-graph.ts';
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
  if (tokenizer.vocabSize > config.clip.vocabSize) {
    throw new Error(`${file}: the CLIP tokenizer found has ${tokenizer.vocabSize} tokens but the text encoder only ${config.clip.vocabSize}`);
  }
  const padToken = encoder.tokenizer.padToken === 'eos' ? undefined : encoder.tokenizer.padToken;
  const embeddings = ctx.paths ? new EmbeddingLibrary(ctx.paths, config.clip.width, (m) => ctx.log?.warn(m)) : undefined;
  const read = (patches: PatchMap) => async (name: string): Promise<Float32Array> => {
    return applyEntries(name, () => ws.get(name), ws.shape(name), patches.get(name) ?? [], runtime.matmul(), () => ws.raw?.(name));
  };
  const extraConds: ExtraConds = (entry, info) => family.extraConds(config, entry, info);
  const latentFormat = family.latentFormat(config);
  const sampling = family.modelSampling(config);
  const skips = unetSkipCount(config.unet);
  const makeModel = (patches: PatchMap): ModelHandle => {
    const own = ownPatches(patches, parts.unet.prefix);
    return {
      id: own.size ? `${family.id}:${hash}+${patchMapHash(own).slice(0, 16)}` : `${family.id}:${hash}`,
      family: family.id,
      unet: new OrtUnet(config.unet.inChannels, config.unet.contextDim, skips, runtime.runner(parts.unet, own), skips),
      sampling,
      latentFormat,
      extraConds,
      patching: { prefix: parts.unet.prefix, weights: ws, patches: own, withPatches: (p) => makeModel(p), read: read(own) },
    };
  };
  const makeClip = (patches: PatchMap, layer?: number): OrtClip => {
    const own = ownPatches(patches, parts.clip.prefix);
    return new OrtClip({
      id: own.size ? `clip:${hash}+${patchMapHash(own).slice(0, 16)}` : `clip:${hash}`,
      tokenizer,
      numLayers: config.clip.layers,
      hiddenSize: config.clip.width,
      run: runtime.runner(parts.clip, own),
      layer: layer ?? encoder.defaultLayer,
      padToken,
      projectedPooled: encoder.pooled === 'projected' && config.clip.projectionDim !== undefined,
      embeddings: embeddings?.lookup,
      warn: (m) => ctx.log?.warn(m),
      patching: (c): WeightPatching<ClipHandle> => ({ prefix: parts.clip.prefix, weights: ws, patches: own, withPatches: (p) => makeClip(p, c.layer), read: read(own) }),
    });
  };
  return {
    family: family.id,
    config,
    model: makeModel(NO_PATCHES),
    clip: makeClip(NO_PATCHES),
    vae: ldmVaeHandle(runtime, { cfg: config.vae, weights: parts.vae_decoder.weights, hash, prefix: parts.vae_decoder.prefix, file }),
  };
}
