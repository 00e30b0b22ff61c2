import type { Sd1Config } from './config.ts';
import { sd1Weights } from './detect.ts';
import { unetSkipCount } from './graphs/unet-graph.ts';
import type { ClipHandle, ExtraConds, ModelHandle, WeightPatching } from '../../handles.ts';
import { OrtClip } from '../../ort-clip.ts';
import { OrtUnet } from '../../ort-unet.ts';
import { applyEntries, NO_PATCHES, patchMapHash, type PatchMap } from '../../patching/patch-set.ts';
import { ownPatches } from '../../runtime/part.ts';
import { loadClipTokenizer } from '../../../text/clip-tokenizer.ts';
import { EmbeddingLibrary } from '../../../text/embeddings.ts';
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
  if (tokenizer.vocabSize > config.clip.vocabSize) {
    throw new Error(`${file}: the CLIP tokenizer found has ${tokenizer.vocabSize} tokens but the text encoder only ${config.clip.vocabSize}`);
  }
  const embeddings = ctx.paths ? new EmbeddingLibrary(ctx.paths, config.clip.hiddenSize, (m) => ctx.log?.warn(m)) : undefined;
  const read = (patches: PatchMap) => async (name: string): Promise<Float32Array> => {
    return applyEntries(name, () => ws.get(name), ws.shape(name), patches.get(name) ?? [], runtime.matmul(), () => ws.raw?.(name));
  };
  const extraConds: ExtraConds = (entry, info) => family.extraConds(config, entry, info);
  const latentFormat = family.latentFormat(config);
  const sampling = family.modelSampling(config);
  const makeModel = (patches: PatchMap): ModelHandle => {
    const own = ownPatches(patches, parts.unet.prefix);
    return {
      id: own.size ? `${family.id}:${hash}+${patchMapHash(own).slice(0, 16)}` : `${family.id}:${hash}`,
      family: family.id,
      unet: new OrtUnet(config.unet.inChannels, config.unet.contextDim, unetSkipCount(config.unet), runtime.runner(parts.unet, own), unetSkipCount(config.unet)),
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
      numLayers: config.clip.numLayers,
      hiddenSize: config.clip.hiddenSize,
      run: runtime.runner(parts.clip, own),
      layer: layer ?? encoder.defaultLayer,
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

/** OrtClip encodes as SD1's CLIP-L does; an encoder that differs in how it pads, normalises or pools needs more than it. */
function assertOrtClipRuns(e: TextEncoderSpec | undefined, family: ModelFamily<Sd1Config>): asserts e is TextEncoderSpec {
  if (!e) throw new Error(`${family.name} declares no text encoder`);
  if (e.tokenizer.padToken !== 'eos' || !e.layerNormHiddenState || e.pooled !== 'eos' || e.tokenizer.maxLength !== 77) {
    throw new Error(`${family.name}: text encoder '${e.part}' pads, normalises or pools in a way the CLIP handle does not implement yet`);
  }
}
