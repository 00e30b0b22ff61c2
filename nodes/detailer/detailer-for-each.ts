import { defineNode } from '../../engine/registry/types.ts';
import { detailForEach } from '../../engine/sampling/detail/detail-for-each.ts';
import { cycleInput, detailerHead, detailerOptional, detailOptions, wildcardInput } from './detailer-inputs.ts';

/** The Impact Pack's DetailerForEach: every segment cropped, upscaled to guide_size, inpainted and pasted back. */
export const DetailerForEach = defineNode({
  name: 'DetailerForEach',
  displayName: 'Detailer (SEGS)',
  category: 'ImpactPack/Detailer',
  description:
    'Detail each segment: crop its crop_region, upscale it toward guide_size, sample it with its mask as noise mask, and paste it back through the feathered mask.',
  searchAliases: ['detailer', 'face fix', 'inpaint segments', 'impact'],
  inputs: {
    required: {
      image: { type: 'IMAGE' },
      segs: { type: 'SEGS' },
      model: { type: 'MODEL' },
      clip: { type: 'CLIP' },
      vae: { type: 'VAE' },
      ...detailerHead,
      wildcard: wildcardInput,
      cycle: cycleInput,
    },
    optional: detailerOptional,
  },
  outputs: [{ type: 'IMAGE', name: 'image' }],
  async run(i, ctx) {
    const out = await detailForEach(i.image, i.segs, detailOptions(i, ctx));
    return [out.image];
  },
});
