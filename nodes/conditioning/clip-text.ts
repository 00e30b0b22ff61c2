import type { Conditioning } from '../../engine/sampling/conditioning.ts';
import { defineNode } from '../../engine/registry/types.ts';

export const CLIPTextEncode = defineNode({
  name: 'CLIPTextEncode',
  displayName: 'CLIP Text Encode (Prompt)',
  category: 'conditioning',
  description:
    'Encodes a text prompt using a CLIP model into an embedding that can be used to guide the diffusion model towards generating specific images.',
  searchAliases: ['prompt', 'text', 'positive prompt', 'negative prompt'],
  inputs: {
    required: {
      text: { type: 'STRING', multiline: true, dynamicPrompts: true, tooltip: 'The text to be encoded.' },
      clip: { type: 'CLIP', tooltip: 'The CLIP model used for encoding the text.' },
    },
  },
  outputs: [
    {
      type: 'CONDITIONING',
      name: 'CONDITIONING',
      tooltip: 'A conditioning containing the embedded text used to guide the diffusion model.',
    },
  ],
  async run({ text, clip }, ctx) {
    const { cond, pooled } = await clip.encodeText(text, ctx.signal);
    const out: Conditioning = [{ cond, pooled }];
    return [out];
  },
});

export const CLIPSetLastLayer = defineNode({
  name: 'CLIPSetLastLayer',
  displayName: 'CLIP Set Last Layer',
  category: 'conditioning',
  inputs: { required: { clip: { type: 'CLIP' }, stop_at_clip_layer: { type: 'INT', default: -1, min: -24, max: -1, step: 1 } } },
  outputs: [{ type: 'CLIP', name: 'CLIP' }],
  run({ clip, stop_at_clip_layer }) {
    return [clip.withLayer(stop_at_clip_layer)];
  },
});

export const nodes = [CLIPTextEncode, CLIPSetLastLayer];
