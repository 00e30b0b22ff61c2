import type { ClipHandle, WeightPatching } from '../../handles.ts';
import { OrtClip } from '../../ort-clip.ts';
import { NO_PATCHES, type PatchMap } from '../../patching/patch-set.ts';
import { ownPatches } from '../../runtime/part.ts';
import type { PartSpec } from '../../runtime/part.ts';
import { loadClipTokenizer } from '../../../text/clip-tokenizer.ts';
import { EmbeddingLibrary } from '../../../text/embeddings.ts';
import { assertTokenizerFits, unetAssembly } from '../assemble-shared.ts';
import type { AssembleContext, CheckpointParts, ModelFamily } from '../family.ts';
import { ldmVaeHandle } from '../ldm-vae.ts';
import { sd1Weights } from '../sd1/weight-views.ts';
import { SdxlClip } from './clip.ts';
import { SDXL_PREFIX, type SdxlConfig } from './config.ts';
import { sdxlParts } from './parts.ts';

/** Patch names of both text encoders (`conditioner.embedders.0.…`, `.1.…`): CLIP's share for LoRA, merges and CheckpointSave. */
const CLIP_PATCH_PREFIX = 'conditioner.embedders.';

/**
 * MODEL, CLIP and VAE handles of an SDXL checkpoint, as `assembleSd1` makes SD1's: cheap views whose
 * ids name the checkpoint and its patches (`sdxl:<hash>[+…]`, `clip:<hash>…`, `vae:<hash>`); a
 * patched handle runs a patched variant of the same build, per part.
 */
export function assembleSdxl(family: ModelFamily<SdxlConfig>, config: SdxlConfig, ctx: AssembleContext): CheckpointParts<SdxlConfig> {
  const { file, hash, runtime } = ctx;
  const ws = sd1Weights(ctx.source);
  const parts = sdxlParts(config, ws, ctx);
  const specs = family.textEncoders(config);
  const tokenizer = loadClipTokenizer({ modelPath: file, paths: ctx.paths, vocabulary: specs[0].tokenizer.vocabulary, bundled: true });
  const vocab = Math.min(config.clipG.vocabSize, config.clipL?.vocabSize ?? Infinity);
  assertTokenizerFits(file, tokenizer, vocab, 'encoders');
  const library = (width: number): EmbeddingLibrary | undefined => (ctx.paths ? new EmbeddingLibrary(ctx.paths, width, (m) => ctx.log?.warn(m)) : undefined);
  const embeddingsL = config.clipL && library(config.clipL.hiddenSize);
  const embeddingsG = library(config.clipG.width);
  const asm = unetAssembly(family, config, ctx, ws, parts.unet);
  const encoder = (part: PartSpec, patches: PatchMap, o: { numLayers: number; hiddenSize: number; layer: number; pad?: number; projected: boolean }, embeddings?: EmbeddingLibrary): OrtClip =>
    new OrtClip({
      id: part.id,
      tokenizer,
      numLayers: o.numLayers,
      hiddenSize: o.hiddenSize,
      run: runtime.runner(part, ownPatches(patches, part.prefix)),
      layer: o.layer,
      embeddings: embeddings?.lookup,
      warn: (m) => ctx.log?.warn(m),
      padToken: o.pad,
      projectedPooled: o.projected,
    });
  const makeClip = (patches: PatchMap, layer?: number): SdxlClip => {
    const own = ownPatches(patches, CLIP_PATCH_PREFIX);
    const [specL, specG] = config.clipL ? specs : [undefined, specs[0]];
    const lay = layer ?? specG!.defaultLayer;
    const l = config.clipL && parts.clip_l && encoder(parts.clip_l, own, { numLayers: config.clipL.numLayers, hiddenSize: config.clipL.hiddenSize, layer: lay, projected: false }, embeddingsL);
    if (config.clipL && specL?.part !== 'clip_l') throw new Error(`${family.name}: unexpected text encoder order`);
    const pad = specG!.tokenizer.padToken;
    const g = encoder(parts.clip_g, own, { numLayers: config.clipG.layers, hiddenSize: config.clipG.width, layer: lay, pad: pad === 'eos' ? undefined : pad, projected: true }, embeddingsG);
    return new SdxlClip({
      id: asm.patchedId('clip', own),
      l,
      g,
      patching: (c): WeightPatching<ClipHandle> => ({ prefix: CLIP_PATCH_PREFIX, weights: ws, patches: own, withPatches: (p) => makeClip(p, c.layer), read: asm.read(own) }),
    });
  };
  return {
    family: family.id,
    config,
    model: asm.makeModel(NO_PATCHES),
    clip: makeClip(NO_PATCHES),
    vae: ldmVaeHandle(runtime, { cfg: config.vae, weights: parts.vae_decoder.weights, hash, prefix: SDXL_PREFIX.vae, file }),
  };
}
