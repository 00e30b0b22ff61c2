import type { WeightSource } from '../../../core/weights.ts';
import { detectOpenClip, isOpenClip } from '../openclip/config.ts';
import { detectClip, detectVae, readUnetConfig, verifyLayout } from '../sd1/detect.ts';
import { unetLayout, type Layout } from '../sd1/layout.ts';
import { sd1Weights } from '../sd1/weight-views.ts';
import { SDXL_PREFIX, SDXL_SIZE_EMBED, type SdxlConfig } from './config.ts';
import { EDM_DEFAULT_SIGMAS } from './latent.ts';

/** SDXL's attention heads are 64 wide at every level (ComfyUI's num_head_channels); shapes cannot tell it. */
const HEAD_WIDTH = 64;

function check(ws: WeightSource, layout: Layout, what: string): void {
  try {
    verifyLayout(ws, layout, what);
  } catch (e) {
    throw new Error((e as Error).message.replace('consistent SD1 ', 'consistent SDXL '));
  }
}

/** A scalar marker tensor's value (ComfyUI's `float(state_dict[key].item())`). */
function scalar(ws: WeightSource, key: string): number {
  const v = ws.get(key);
  if (v.length !== 1 || !Number.isFinite(v[0])) throw new Error(`SDXL checkpoint: ${key} should hold one finite number, it has ${v.length} values (${Array.from(v.slice(0, 4)).join(', ')})`);
  return v[0];
}

/**
 * The prediction type as ComfyUI's `SDXL.model_type` reads it from marker keys: `edm_mean` + `edm_std`
 * (Playground v2.5: EDM, its latent format and σ 0.002…80), `edm_vpred.sigma_max` (CosXL: v over a
 * continuous σ range read from the file), `v_pred` (with `ztsnr` for zero-terminal-SNR files), else ε.
 */
function prediction(ws: WeightSource): Pick<SdxlConfig, 'prediction' | 'zsnr' | 'edmSigmas'> {
  if (ws.has('edm_mean') && ws.has('edm_std')) return { prediction: 'edm', zsnr: false };
  if (ws.has('edm_vpred.sigma_max')) {
    const sigmaMax = scalar(ws, 'edm_vpred.sigma_max');
    const sigmaMin = ws.has('edm_vpred.sigma_min') ? scalar(ws, 'edm_vpred.sigma_min') : EDM_DEFAULT_SIGMAS.sigmaMin;
    if (!(sigmaMin > 0 && sigmaMax > sigmaMin)) throw new Error(`SDXL checkpoint: edm_vpred.sigma_min ${sigmaMin} and edm_vpred.sigma_max ${sigmaMax} are not a σ range (need 0 < min < max)`);
    return { prediction: 'v_prediction_edm', zsnr: false, edmSigmas: { sigmaMin, sigmaMax } };
  }
  if (ws.has('v_pred')) return { prediction: 'v_prediction', zsnr: ws.has('ztsnr') };
  return { prediction: 'eps', zsnr: false };
}

/**
 * An SDXL base or refiner single-file checkpoint's architecture from its names and shapes (ComfyUI's
 * model_detection + supported_models.SDXL/SDXLRefiner, and the variants that differ only in depths:
 * SSD-1B, Segmind Vega, KOALA, all read from the file). Base: CLIP-L under
 * `conditioner.embedders.0.transformer.text_model.` and OpenCLIP bigG under `conditioner.embedders.1.model.`;
 * refiner: bigG alone under `conditioner.embedders.0.model.`. Undefined when the file has neither layout.
 */
export function detectSdxl(source: WeightSource): SdxlConfig | undefined {
  const base = isOpenClip(source, SDXL_PREFIX.clipG);
  // SD2 in the sgm layout keeps OpenCLIP-H at the refiner's prefix too; only a UNet with label_emb makes it a refiner.
  const refiner = !base && isOpenClip(source, SDXL_PREFIX.clipGRefiner) && source.has(`${SDXL_PREFIX.unet}label_emb.0.0.weight`);
  if (!base && !refiner) return undefined;
  const ws = sd1Weights(source);
  const kind = base ? 'base' : 'refiner';
  const what = base ? 'SDXL checkpoint' : 'SDXL refiner checkpoint';
  if (!ws.has(`${SDXL_PREFIX.unet}input_blocks.0.0.weight`)) throw new Error(`not a complete ${what}: it has the text encoders but no UNet (${SDXL_PREFIX.unet}*)`);
  if (!ws.has(`${SDXL_PREFIX.vae}encoder.conv_in.weight`)) throw new Error(`not a complete ${what}: it has no VAE (${SDXL_PREFIX.vae}*)`);
  const unet = { ...readUnetConfig(ws, SDXL_PREFIX.unet), numHeadChannels: HEAD_WIDTH };
  if (unet.admInChannels === undefined) throw new Error(`not a consistent ${what}: the UNet has no label_emb (the size and pooled-text input)`);
  check(ws, unetLayout(unet, SDXL_PREFIX.unet), 'UNet');
  const clipGPrefix = base ? SDXL_PREFIX.clipG : SDXL_PREFIX.clipGRefiner;
  const clipG = detectOpenClip(ws, clipGPrefix);
  if (clipG.projectionDim === undefined) throw new Error(`not a consistent ${what}: ${clipGPrefix}text_projection is missing (the pooled output's projection)`);
  const clipL = base ? detectClip(ws, SDXL_PREFIX.clipL) : undefined;
  if (base && !clipL) throw new Error(`not a complete ${what}: no CLIP-L under ${SDXL_PREFIX.clipL}`);
  const context = (clipL?.hiddenSize ?? 0) + clipG.width;
  if (unet.contextDim !== context) {
    throw new Error(`inconsistent ${what}: the text encoders give ${context}-wide context (${clipL ? `CLIP-L ${clipL.hiddenSize} + ` : ''}CLIP-G ${clipG.width}) but the UNet's cross-attention takes ${unet.contextDim}`);
  }
  const sizes = base ? 6 : 5;
  const adm = clipG.projectionDim + sizes * SDXL_SIZE_EMBED;
  if (unet.admInChannels !== adm) {
    throw new Error(`inconsistent ${what}: label_emb takes ${unet.admInChannels} values, expected ${adm} (pooled ${clipG.projectionDim} + ${sizes} sizes × ${SDXL_SIZE_EMBED})`);
  }
  return { family: 'sdxl', kind, unet, clipL, clipG, pooledDim: clipG.projectionDim, clipGPrefix, vae: detectVae(ws, SDXL_PREFIX.vae), ...prediction(ws) };
}
