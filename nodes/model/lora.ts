import path from 'node:path';
import type { ClipHandle, ModelHandle, WeightPatching } from '../../engine/models/handles.ts';
import type { ParsedAdapter } from '../../engine/models/lora/index.ts';
import { addPatches, type PatchEntry } from '../../engine/models/patching/patch-set.ts';
import type { ListingContext, NodeContext } from '../../engine/registry/context.ts';
import { defineNode } from '../../engine/registry/types.ts';
import { extractLoraTags } from '../../engine/text/a1111-prompt.ts';
import { modelManager } from './services.ts';

/**
 * ComfyUI's LoraLoader / LoraLoaderModelOnly, and a LoraTagLoader for A1111's `<lora:name:w>` tags.
 * A LoRA adds patch entries to the MODEL's and CLIP's patch lists; the handles rebuild only the
 * sessions whose weights change (see engine/models/patching).
 */

const loras = (env: ListingContext): string[] => env.paths.listFiles('loras');
const STRENGTH = { type: 'FLOAT', default: 1.0, min: -100.0, max: 100.0, step: 0.01 } as const;

/** Patch entries of one adapter for the weights under `prefix`, at `strength`. */
function entriesFor(a: { parsed: ParsedAdapter; hash: string }, prefix: string, strength: number): Map<string, PatchEntry> {
  const out = new Map<string, PatchEntry>();
  for (const patch of a.parsed.patches) {
    if (!patch.target.startsWith(prefix)) continue;
    out.set(patch.target, {
      sig: `${a.hash.slice(0, 24)}:${patch.stem}:${patch.kind}`,
      strength,
      strengthModel: 1,
      source: { kind: 'adapter', patch },
    });
  }
  return out;
}

/** MODEL and/or CLIP with one adapter file applied (either may be absent: LoraLoaderModelOnly). */
export function applyLora(
  ctx: NodeContext,
  file: string,
  label: string,
  model: ModelHandle | undefined,
  clip: ClipHandle | undefined,
  strengthModel: number,
  strengthClip: number,
): [ModelHandle | undefined, ClipHandle | undefined] {
  const owner = model?.patching ?? clip?.patching;
  if (!owner) throw new Error(`${label}: LoRA needs a checkpoint whose weights Weft builds; this model is an exported ONNX graph`);
  const a = modelManager(ctx).loadAdapter(file, owner.weights);
  const { unmatched } = a.parsed;
  if (unmatched.length) {
    ctx.log.warn(
      `${label}: ${unmatched.length} key(s) match nothing in this checkpoint and were not applied, e.g. ${unmatched.slice(0, 3).join(', ')}`,
    );
  }
  if (a.parsed.patches.length === 0) ctx.log.warn(`${label}: no weight of this checkpoint is patched by this file`);
  return [model && withAdapter(label, 'MODEL', model, a, strengthModel), clip && withAdapter(label, 'CLIP', clip, a, strengthClip)];
}

/** `h` with the adapter's patches on its part's weights added at `strength` (itself at strength 0). */
function withAdapter<H extends { readonly patching?: WeightPatching<H> }>(
  label: string,
  what: string,
  h: H,
  a: { parsed: ParsedAdapter; hash: string },
  strength: number,
): H {
  if (strength === 0) return h;
  if (!h.patching) throw new Error(`${label}: this ${what} cannot be patched (an exported ONNX graph)`);
  const adds = entriesFor(a, h.patching.prefix, strength);
  return adds.size ? h.patching.withPatches(addPatches(h.patching.patches, adds)) : h;
}

export const LoraLoader = defineNode({
  name: 'LoraLoader',
  displayName: 'Load LoRA (Model and CLIP)',
  category: 'loaders',
  description:
    'LoRAs are used to modify diffusion and CLIP models, altering the way in which latents are denoised such as applying styles. Multiple LoRA nodes can be linked together.',
  searchAliases: ['lora', 'load lora', 'apply lora', 'lycoris', 'locon', 'loha', 'lokr'],
  inputs: {
    required: {
      model: { type: 'MODEL', tooltip: 'The diffusion model the LoRA will be applied to.' },
      clip: { type: 'CLIP', tooltip: 'The CLIP model the LoRA will be applied to.' },
      lora_name: { type: 'COMBO', options: loras, tooltip: 'The name of the LoRA.' },
      strength_model: { ...STRENGTH, tooltip: 'How strongly to modify the diffusion model. This value can be negative.' },
      strength_clip: { ...STRENGTH, tooltip: 'How strongly to modify the CLIP model. This value can be negative.' },
    },
  },
  outputs: [
    { type: 'MODEL', name: 'MODEL', tooltip: 'The modified diffusion model.' },
    { type: 'CLIP', name: 'CLIP', tooltip: 'The modified CLIP model.' },
  ],
  run({ model, clip, lora_name, strength_model, strength_clip }, ctx) {
    if (strength_model === 0 && strength_clip === 0) return [model, clip];
    const [m, c] = applyLora(
      ctx,
      ctx.paths.require('loras', lora_name),
      `lora_name '${lora_name}'`,
      model,
      clip,
      strength_model,
      strength_clip,
    );
    return [m!, c!];
  },
});

export const LoraLoaderModelOnly = defineNode({
  name: 'LoraLoaderModelOnly',
  displayName: 'Load LoRA',
  category: 'loaders',
  description: 'LoRAs are used to modify the diffusion model, altering the way in which latents are denoised such as applying styles.',
  inputs: {
    required: {
      model: { type: 'MODEL' },
      lora_name: { type: 'COMBO', options: loras },
      strength_model: { type: 'FLOAT', default: 1.0, min: -100.0, max: 100.0, step: 0.01 },
    },
  },
  outputs: [{ type: 'MODEL', name: 'MODEL' }],
  run({ model, lora_name, strength_model }, ctx) {
    if (strength_model === 0) return [model];
    return [applyLora(ctx, ctx.paths.require('loras', lora_name), `lora_name '${lora_name}'`, model, undefined, strength_model, 0)[0]!];
  },
});

/** A LoRA file by the name an A1111 tag uses: file name without extension, case-insensitive, any subfolder. */
function findLora(ctx: NodeContext, name: string): string | undefined {
  const files = ctx.paths.listFiles('loras');
  const want = name.toLowerCase();
  const stem = (f: string): string => path.basename(f, path.extname(f)).toLowerCase();
  return (
    files.find((f) => f.toLowerCase() === want) ??
    files.find((f) => stem(f) === want) ??
    files.find((f) => f.slice(0, -path.extname(f).length).toLowerCase() === want)
  );
}

export const LoraTagLoader = defineNode({
  name: 'LoraTagLoader',
  displayName: 'Load LoRA Tags (A1111)',
  category: 'loaders',
  description:
    "Applies every <lora:name:weight> or <lora:name:te_weight:unet_weight> tag in the text (AUTOMATIC1111's syntax) and returns the text without them.",
  searchAliases: ['lora tag', 'a1111 lora', '<lora:'],
  inputs: {
    required: {
      model: { type: 'MODEL' },
      clip: { type: 'CLIP' },
      text: { type: 'STRING', multiline: true, dynamicPrompts: true },
    },
  },
  outputs: [
    { type: 'MODEL', name: 'MODEL' },
    { type: 'CLIP', name: 'CLIP' },
    { type: 'STRING', name: 'STRING' },
  ],
  run({ model, clip, text }, ctx) {
    const tags = extractLoraTags(text, { onWarning: (m) => ctx.log.warn(`text: ${m}`) });
    let m: ModelHandle = model;
    let c: ClipHandle = clip;
    for (const t of tags.loras) {
      const file = findLora(ctx, t.name);
      if (!file) {
        ctx.log.warn(`text: no LoRA named '${t.name}' in the loras folders; the tag is ignored`);
        continue;
      }
      const [mm, cc] = applyLora(ctx, ctx.paths.require('loras', file), `<lora:${t.name}>`, m, c, t.unet, t.te);
      m = mm!;
      c = cc!;
    }
    return [m, c, tags.text];
  },
});

export const nodes = [LoraLoader, LoraLoaderModelOnly];
/** Weft's own (no ComfyUI core counterpart). */
export const weftNodes = [LoraTagLoader];
