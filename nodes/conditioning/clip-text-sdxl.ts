import { SdxlClip } from '../../engine/models/families/sdxl/clip.ts';
import type { ClipHandle } from '../../engine/models/handles.ts';
import { defineNode } from '../../engine/registry/types.ts';
import type { Conditioning } from '../../engine/sampling/conditioning.ts';
import { MAX_RESOLUTION } from '../latent/empty-latent.ts';

/** The node's CLIP as SDXL's, or an error naming the node and what was connected. */
function sdxlClip(clip: ClipHandle, node: string): SdxlClip {
  if (!(clip instanceof SdxlClip))
    throw new Error(`${node}: the CLIP input is not an SDXL CLIP (CLIP-L + CLIP-G); use CLIPTextEncode for other models`);
  return clip;
}

const size = (def: number) => ({ type: 'INT' as const, default: def, min: 0, max: MAX_RESOLUTION });

export const CLIPTextEncodeSDXL = defineNode({
  name: 'CLIPTextEncodeSDXL',
  displayName: 'CLIPTextEncodeSDXL',
  category: 'advanced/conditioning',
  description:
    "Encodes text_g with SDXL's CLIP-G and text_l with its CLIP-L, and sets the size and crop values the SDXL UNet is conditioned on.",
  inputs: {
    required: {
      clip: { type: 'CLIP' },
      width: size(1024),
      height: size(1024),
      crop_w: size(0),
      crop_h: size(0),
      target_width: size(1024),
      target_height: size(1024),
      text_g: { type: 'STRING', multiline: true, dynamicPrompts: true },
      text_l: { type: 'STRING', multiline: true, dynamicPrompts: true },
    },
  },
  outputs: [{ type: 'CONDITIONING', name: 'CONDITIONING' }],
  async run({ clip, width, height, crop_w, crop_h, target_width, target_height, text_g, text_l }, ctx) {
    const { cond, pooled } = await sdxlClip(clip, 'CLIPTextEncodeSDXL').encodeSdxl(text_g, text_l, ctx.signal);
    const out: Conditioning = [
      { cond, pooled, size: { width, height, cropW: crop_w, cropH: crop_h, targetWidth: target_width, targetHeight: target_height } },
    ];
    return [out];
  },
});

export const CLIPTextEncodeSDXLRefiner = defineNode({
  name: 'CLIPTextEncodeSDXLRefiner',
  displayName: 'CLIPTextEncodeSDXLRefiner',
  category: 'advanced/conditioning',
  description: 'Encodes text for the SDXL refiner (CLIP-G) with the aesthetic score and image size its UNet is conditioned on.',
  inputs: {
    required: {
      ascore: { type: 'FLOAT', default: 6.0, min: 0.0, max: 1000.0, step: 0.01 },
      width: size(1024),
      height: size(1024),
      text: { type: 'STRING', multiline: true, dynamicPrompts: true },
      clip: { type: 'CLIP' },
    },
  },
  outputs: [{ type: 'CONDITIONING', name: 'CONDITIONING' }],
  async run({ ascore, width, height, text, clip }, ctx) {
    // ComfyUI tokenizes and encodes as CLIPTextEncode does (any CLIP), adding the size and score.
    const { cond, pooled } = await clip.encodeText(text, ctx.signal);
    const out: Conditioning = [{ cond, pooled, size: { aestheticScore: ascore, width, height } }];
    return [out];
  },
});

export const nodes = [CLIPTextEncodeSDXLRefiner, CLIPTextEncodeSDXL];
