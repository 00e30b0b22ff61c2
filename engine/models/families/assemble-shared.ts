import type { WeightSource } from '../../core/weights.ts';
import { loadClipTokenizer, type ClipTokenizer } from '../../text/clip-tokenizer.ts';
import { EmbeddingLibrary } from '../../text/embeddings.ts';
import type { ClipHandle, ExtraConds, ModelHandle, WeightPatching } from '../handles.ts';
import { OrtClip } from '../ort-clip.ts';
import { OrtUnet } from '../ort-unet.ts';
import { applyEntries, NO_PATCHES, patchMapHash, type PatchMap } from '../patching/patch-set.ts';
import { ownPatches, type PartSpec } from '../runtime/part.ts';
import type { AssembleContext, CheckpointParts, ModelFamily, TextEncoderSpec } from './family.ts';
import { ldmVaeHandle } from './ldm-vae.ts';
import type { UNetConfig, VaeConfig } from './sd1/config.ts';
import { unetSkipCount } from './sd1/graphs/unet-graph.ts';

/**
 * What the SD1, SD2 and SDXL assemblies share: handles are cheap views, a patched one is the same
 * assembly with other patches, and ids name the checkpoint's hash plus the hash of the patches that
 * fall on the part (`<kind>:<hash>[+<patches>]`), so the executor's cache and the build cache go by them.
 */
export interface UnetAssembly {
  /** The weight reader LoRA merges and CheckpointSave use: each tensor with its patches applied. */
  read: (patches: PatchMap) => (name: string) => Promise<Float32Array>;
  /** `<kind>:<hash>`, plus `+` and the patches' hash when there are any. */
  patchedId: (kind: string, own: PatchMap) => string;
  makeModel: (patches: PatchMap) => ModelHandle;
}

export function unetAssembly<C extends { unet: UNetConfig }>(
  family: ModelFamily<C>,
  config: C,
  ctx: AssembleContext,
  ws: WeightSource,
  unet: PartSpec,
): UnetAssembly {
  const { hash, runtime } = ctx;
  const read = (patches: PatchMap) => async (name: string): Promise<Float32Array> => {
    return applyEntries(name, () => ws.get(name), ws.shape(name), patches.get(name) ?? [], runtime.matmul(), () => ws.raw?.(name));
  };
  const patchedId = (kind: string, own: PatchMap): string => (own.size ? `${kind}:${hash}+${patchMapHash(own).slice(0, 16)}` : `${kind}:${hash}`);
  const extraConds: ExtraConds = (entry, info, promptType) => family.extraConds(config, entry, info, promptType);
  const latentFormat = family.latentFormat(config);
  const sampling = family.modelSampling(config);
  const skips = unetSkipCount(config.unet);
  const makeModel = (patches: PatchMap): ModelHandle => {
    const own = ownPatches(patches, unet.prefix);
    return {
      id: patchedId(family.id, own),
      family: family.id,
      unet: new OrtUnet(config.unet.inChannels, config.unet.contextDim, skips, runtime.runner(unet, own), skips),
      sampling,
      latentFormat,
      extraConds,
      patching: { prefix: unet.prefix, weights: ws, patches: own, withPatches: (p) => makeModel(p), read: read(own) },
    };
  };
  return { read, patchedId, makeModel };
}

/** Refuses a tokenizer whose ids the text encoders' embedding tables (`vocab` rows) cannot hold. */
export function assertTokenizerFits(file: string, tokenizer: ClipTokenizer, vocab: number, encoders: 'encoder' | 'encoders'): void {
  if (tokenizer.vocabSize > vocab) {
    throw new Error(`${file}: the CLIP tokenizer found has ${tokenizer.vocabSize} tokens but the text ${encoders} only ${vocab}`);
  }
}

/** A one-encoder family's text encoder (SD1's CLIP-L, SD2's OpenCLIP-H) as the CLIP handle drives it. */
export interface OneEncoder {
  spec: TextEncoderSpec;
  numLayers: number;
  hiddenSize: number;
  /** Rows of its token embedding: the tokenizer found must not have more. */
  vocabSize: number;
  padToken?: number;
  projectedPooled?: boolean;
}

/**
 * MODEL, CLIP and VAE handles of a checkpoint with one text encoder over its `unet`, `clip` and
 * `vae_decoder` parts: the tokenizer beside the file (or the bundled one), embeddings from the
 * embeddings folder, and the LDM VAE.
 */
export function assembleOneEncoder<C extends { unet: UNetConfig; vae: VaeConfig }>(
  family: ModelFamily<C>,
  config: C,
  ctx: AssembleContext,
  ws: WeightSource,
  parts: { unet: PartSpec; clip: PartSpec; vae_decoder: PartSpec },
  encoder: OneEncoder,
): CheckpointParts<C> {
  const { file, hash, runtime } = ctx;
  const tokenizer = loadClipTokenizer({ modelPath: file, paths: ctx.paths, vocabulary: encoder.spec.tokenizer.vocabulary, bundled: true });
  assertTokenizerFits(file, tokenizer, encoder.vocabSize, 'encoder');
  const embeddings = ctx.paths ? new EmbeddingLibrary(ctx.paths, encoder.hiddenSize, (m) => ctx.log?.warn(m)) : undefined;
  const asm = unetAssembly(family, config, ctx, ws, parts.unet);
  const makeClip = singleClip(ctx, ws, asm, parts.clip, { ...encoder, tokenizer, embeddings });
  return {
    family: family.id,
    config,
    model: asm.makeModel(NO_PATCHES),
    clip: makeClip(NO_PATCHES),
    vae: ldmVaeHandle(runtime, { cfg: config.vae, weights: parts.vae_decoder.weights, hash, prefix: parts.vae_decoder.prefix, file }),
  };
}

/** The CLIP handle of a one-encoder family over its `clip` part, by patches and layer. */
function singleClip(
  ctx: AssembleContext,
  ws: WeightSource,
  asm: UnetAssembly,
  clip: PartSpec,
  o: OneEncoder & { tokenizer: ClipTokenizer; embeddings?: EmbeddingLibrary },
): (patches: PatchMap, layer?: number) => OrtClip {
  const makeClip = (patches: PatchMap, layer?: number): OrtClip => {
    const own = ownPatches(patches, clip.prefix);
    return new OrtClip({
      id: asm.patchedId('clip', own),
      tokenizer: o.tokenizer,
      numLayers: o.numLayers,
      hiddenSize: o.hiddenSize,
      run: ctx.runtime.runner(clip, own),
      layer: layer ?? o.spec.defaultLayer,
      padToken: o.padToken,
      projectedPooled: o.projectedPooled,
      embeddings: o.embeddings?.lookup,
      warn: (m) => ctx.log?.warn(m),
      patching: (c): WeightPatching<ClipHandle> => ({
        prefix: clip.prefix,
        weights: ws,
        patches: own,
        withPatches: (p) => makeClip(p, c.layer),
        read: asm.read(own),
      }),
    });
  };
  return makeClip;
}
