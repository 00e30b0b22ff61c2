import type { WeightSource } from '../../core/weights.ts';
import type { UNetConfig } from '../families/sd1/config.ts';
import { readUnetConfig } from '../families/sd1/detect.ts';
import { UnsupportedModelError } from '../errors.ts';
import type { ControlNetConfig } from './layout.ts';

/** The family a ControlNet's UNet copy belongs to, when it is not SD1 (ComfyUI's model detection, told by shapes). */
function otherFamily(cfg: ControlNetConfig['unet']): [string, string] | undefined {
  if (cfg.admInChannels !== undefined) return ['SDXL', `label_emb input of ${cfg.admInChannels}`];
  if (cfg.contextDim === 2048) return ['SDXL', 'cross-attention width 2048'];
  if (cfg.contextDim === 1024) return ['SD2.x', 'cross-attention width 1024'];
  if (cfg.useLinearInProj) return ['SD2.x', 'linear transformer projections'];
  return undefined;
}

/** A ControlNet's UNet structure from its (encoder-half) shapes, refusing the families Weft's ControlNets do not run. */
export function controlNetUnet(weights: WeightSource): UNetConfig {
  let unet = readUnetConfig(weights, '', { encoderOnly: true });
  // SDXL's ControlNets (label_emb, linear projections, widths in 64-wide heads, not SD2's 1024-wide context) run as its UNet does: 64-wide heads, a y input.
  if (unet.admInChannels !== undefined && unet.useLinearInProj && unet.contextDim !== 1024 && unet.modelChannels % 64 === 0) unet = { ...unet, numHeadChannels: 64 };
  const family = unet.numHeadChannels === undefined ? otherFamily(unet) : undefined;
  if (family) throw new UnsupportedModelError(`a ControlNet for ${family[0]}`, `${family[1]}; Weft runs SD1 ControlNets for now`);
  return unet;
}

