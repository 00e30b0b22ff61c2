import type { WeightSource } from '../../../core/weights.ts';
import { UnsupportedModelError } from '../../errors.ts';
import { detectOpenClip, isOpenClip } from '../openclip/config.ts';
import { refuseUnsupported } from '../unsupported.ts';
import { detectVae, readUnetConfig, verifyLayout } from '../sd1/detect.ts';
import { unetLayout } from '../sd1/layout.ts';
import { sd1Weights } from '../sd1/weight-views.ts';
import { SD2_HEAD_WIDTH, SD2_PREFIX, type Sd2Config } from './config.ts';

/** ComfyUI's SD20.model_type threshold on the population std of one norm bias (its own comment: "not sure how well this will actually work"). */
export const SD2_VPRED_STD = 0.09;
/** The tensor that rule reads, under the UNet prefix. */
export const SD2_VPRED_KEY = 'output_blocks.11.1.transformer_blocks.0.norm1.bias';

/** Population standard deviation (torch.std(unbiased=False)), in float64. */
function populationStd(v: Float32Array): number {
  let mean = 0;
  for (const x of v) mean += x;
  mean /= v.length;
  let s = 0;
  for (const x of v) s += (x - mean) ** 2;
  return Math.sqrt(s / v.length);
}

/**
 * ComfyUI's SD20.model_type: a 4-channel UNet whose `output_blocks.11.1.transformer_blocks.0.norm1.bias`
 * has a population std above 0.09 is 768-v (v prediction); every other one (512-base, the 9-channel
 * inpainting model, a file without that tensor) is ε. The one place detection reads tensor data.
 */
export function sd2Prediction(ws: WeightSource, unetPrefix: string, inChannels: number): 'eps' | 'v_prediction' {
  const key = `${unetPrefix}${SD2_VPRED_KEY}`;
  if (inChannels !== 4 || !ws.has(key)) return 'eps';
  // torch compares the float32 std with the threshold cast to float32, so both are rounded to float32 here.
  return Math.fround(populationStd(ws.get(key))) > Math.fround(SD2_VPRED_STD) ? 'v_prediction' : 'eps';
}

/**
 * An SD2.x single-file checkpoint's architecture (ComfyUI's model_detection + supported_models.SD20):
 * an LDM UNet with linear transformer projections and 64-wide heads whose cross-attention takes the
 * OpenCLIP-H text encoder under `cond_stage_model.model.` (or the sgm layout's
 * `conditioner.embedders.0.model.`). Widths and depths are read from the shapes, so small test models
 * load; every tensor they imply is checked. Undefined when the file has no open_clip text encoder in
 * those places, or is the SDXL refiner (its sgm-layout G with a `label_emb` UNet). SD2.1 unCLIP
 * (`label_emb` on an LDM-layout file) is refused by name.
 */
export function detectSd2(source: WeightSource): Sd2Config | undefined {
  const clipPrefix = isOpenClip(source, SD2_PREFIX.clip) ? SD2_PREFIX.clip : isOpenClip(source, SD2_PREFIX.clipSgm) ? SD2_PREFIX.clipSgm : undefined;
  if (!clipPrefix) return undefined;
  // A file with an open_clip tower may still be another family's (Stable Zero123 keeps one for images).
  refuseUnsupported(source.names());
  const unetPrefix = SD2_PREFIX.unet;
  const label = source.has(`${unetPrefix}label_emb.0.0.weight`);
  // The SDXL refiner stores its bigG where the sgm layout stores SD2's H; its UNet takes the adm vector.
  if (label && clipPrefix === SD2_PREFIX.clipSgm) return undefined;
  if (source.has('conditioner.embedders.1.model.token_embedding.weight')) return undefined;
  if (label) {
    const adm = source.shape(`${unetPrefix}label_emb.0.0.weight`)[1];
    const which = adm === 1536 ? 'SD2.1 unCLIP-L (SD21UnclipL)' : adm === 2048 ? 'SD2.1 unCLIP-H (SD21UnclipH)' : 'an SD2.x unCLIP or class-conditioned model';
    throw new UnsupportedModelError(which, `label_emb takes a ${adm}-wide image embedding; Weft runs SD2.x text-to-image checkpoints`);
  }
  const ws = sd1Weights(source);
  if (!ws.has(`${unetPrefix}input_blocks.0.0.weight`)) throw new Error(`not a complete SD2 checkpoint: it has the OpenCLIP text encoder but no UNet (${unetPrefix}*)`);
  if (!ws.has(`${SD2_PREFIX.vae}encoder.conv_in.weight`)) throw new Error(`not a complete SD2 checkpoint: it has no VAE (${SD2_PREFIX.vae}*); load a VAE separately`);
  const unet = { ...readUnetConfig(ws, unetPrefix), numHeadChannels: SD2_HEAD_WIDTH };
  if (!unet.useLinearInProj) throw new Error(`not a consistent SD2 checkpoint: its transformers' proj_in is a 1×1 convolution (SD2 uses linear projections)`);
  try {
    verifyLayout(ws, unetLayout(unet, unetPrefix), 'UNet');
  } catch (e) {
    throw new Error((e as Error).message.replace('consistent SD1 ', 'consistent SD2 '));
  }
  const clip = detectOpenClip(ws, clipPrefix);
  if (clip.width !== unet.contextDim) {
    throw new Error(`inconsistent SD2 checkpoint: the OpenCLIP text encoder is ${clip.width} wide but the UNet's cross-attention takes ${unet.contextDim}`);
  }
  return { family: 'sd2', unet, clip, clipPrefix, vae: detectVae(ws, SD2_PREFIX.vae), prediction: sd2Prediction(ws, unetPrefix, unet.inChannels) };
}
