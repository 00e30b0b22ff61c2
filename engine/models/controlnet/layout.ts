import type { UNetConfig } from '../families/sd1/config.ts';
import { unetLayout, type Layout } from '../families/sd1/layout.ts';
import { unetPlan } from '../families/sd1/unet-plan.ts';
import { unionLayout, type UnionConfig } from './union.ts';

/**
 * A ControlNet as ComfyUI's `cldm.ControlNet` lays it out: the UNet's embedding, input blocks and
 * middle block under their UNet names, the hint encoder `input_hint_block.*`, one 1×1 zero conv per
 * skip connection (`zero_convs.<i>.0`) and one after the middle block (`middle_block_out.0`).
 */

export interface ControlNetConfig {
  /** The UNet structure whose encoder half this ControlNet copies (output blocks unused). */
  readonly unet: UNetConfig;
  /** Channels of the hint image (3 for every ControlNet 1.x). */
  readonly hintChannels: number;
  /** A ControlNet Union's task embedding and control-type modules (see union.ts). */
  readonly union?: UnionConfig;
}

/** The hint encoder's convs: `input_hint_block.<index>`, output channels (0 = the model width) and stride; SiLU between them. */
export const HINT_CONVS: readonly { readonly index: number; readonly channels: number; readonly stride: number }[] = [
  { index: 0, channels: 16, stride: 1 },
  { index: 2, channels: 16, stride: 1 },
  { index: 4, channels: 32, stride: 2 },
  { index: 6, channels: 32, stride: 1 },
  { index: 8, channels: 96, stride: 2 },
  { index: 10, channels: 96, stride: 1 },
  { index: 12, channels: 256, stride: 2 },
  { index: 14, channels: 0, stride: 1 },
];

/** Hint pixels per latent pixel: the hint encoder's three stride-2 convs (ComfyUI's compression_ratio). */
export const HINT_DOWNSCALE = 8;

export const zeroConvKey = (i: number): string => `zero_convs.${i}.0`;
export const MIDDLE_OUT_KEY = 'middle_block_out.0';

/** Bare ControlNet keys (no `control_model.`) with their shapes. */
export function controlNetLayout(cfg: ControlNetConfig, prefix = ''): Layout {
  const l: Layout = new Map();
  for (const [name, shape] of unetLayout(cfg.unet, prefix)) {
    const bare = name.slice(prefix.length);
    if (!bare.startsWith('output_blocks.') && !bare.startsWith('out.')) l.set(name, shape);
  }
  const conv = (key: string, out: number, inp: number, k: number): void => {
    l.set(`${prefix}${key}.weight`, [out, inp, k, k]);
    l.set(`${prefix}${key}.bias`, [out]);
  };
  let ch = cfg.hintChannels;
  for (const c of HINT_CONVS) {
    const out = c.channels || cfg.unet.modelChannels;
    conv(`input_hint_block.${c.index}`, out, ch, 3);
    ch = out;
  }
  const plan = unetPlan(cfg.unet);
  plan.skipChannels.forEach((c, i) => conv(zeroConvKey(i), c, c, 1));
  const mid = plan.skipChannels[plan.skipChannels.length - 1];
  conv(MIDDLE_OUT_KEY, mid, mid, 1);
  if (cfg.union) for (const [k, shape] of unionLayout(cfg.union, cfg.unet.modelChannels)) l.set(prefix + k, shape);
  return l;
}
