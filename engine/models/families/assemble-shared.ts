import type { WeightSource } from '../../core/weights.ts';
import type { ClipTokenizer } from '../../text/clip-tokenizer.ts';
import type { EmbeddingLibrary } from '../../text/embeddings.ts';
import type { ClipHandle, ExtraConds, ModelHandle, WeightPatching } from '../handles.ts';
import { OrtClip } from '../ort-clip.ts';
import { OrtUnet } from '../ort-unet.ts';
import { applyEntries, patchMapHash, type PatchMap } from '../patching/patch-set.ts';
import { ownPatches, type PartSpec } from '../runtime/part.ts';
import type { AssembleContext, ModelFamily } from './family.ts';
import type { UNetConfig } from './sd1/config.ts';
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

export interface SingleClipOptions {
  tokenizer: ClipTokenizer;
  numLayers: number;
  hiddenSize: number;
  defaultLayer: number;
  padToken?: number;
  projectedPooled?: boolean;
  embeddings?: EmbeddingLibrary;
}

/** The CLIP handle of a one-encoder family (SD1's CLIP-L, SD2's OpenCLIP-H) over its `clip` part, by patches and layer. */
export function singleClip(
  ctx: AssembleContext,
  ws: WeightSource,
  asm: UnetAssembly,
  clip: PartSpec,
  o: SingleClipOptions,
): (patches: PatchMap, layer?: number) => OrtClip {
  const makeClip = (patches: PatchMap, layer?: number): OrtClip => {
    const own = ownPatches(patches, clip.prefix);
    return new OrtClip({
      id: asm.patchedId('clip', own),
      tokenizer: o.tokenizer,
      numLayers: o.numLayers,
      hiddenSize: o.hiddenSize,
      run: ctx.runtime.runner(clip, own),
      layer: layer ?? o.defaultLayer,
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
