import { describe, expect, it } from 'vitest';
import { builtinFamilies } from '../../engine/models/families/index.ts';
import { layoutShapes, SD15_CONFIG, sd1Layout } from '../../engine/models/families/sd1/layout.ts';
import { transformerDepths } from '../../engine/models/families/sd1/unet-plan.ts';
import { SDXL_PREFIX, type SdxlConfig } from '../../engine/models/families/sdxl/config.ts';
import { detectSdxl } from '../../engine/models/families/sdxl/detect.ts';
import { SDXL_LATENT_FORMAT } from '../../engine/models/families/sdxl/latent.ts';
import { SDXL_BASE_CONFIG, sdxlLayout, tinySdxlConfig } from '../../engine/models/families/sdxl/layout.ts';

/** A checkpoint of `cfg`'s shapes (no data), plus scalar marker tensors. */
const shapes = (cfg: SdxlConfig, markers: string[] = []) => {
  const l = sdxlLayout(cfg);
  for (const m of markers) l.set(m, []);
  return layoutShapes(l);
};

/** ComfyUI's supported_models.SDXLRefiner: 384 channels, 4 levels, depth 4 at the middle two. */
const REFINER: SdxlConfig = {
  ...SDXL_BASE_CONFIG,
  kind: 'refiner',
  clipL: undefined,
  clipGPrefix: SDXL_PREFIX.clipGRefiner,
  unet: {
    ...SDXL_BASE_CONFIG.unet,
    modelChannels: 384,
    channelMult: [1, 2, 4, 4],
    contextDim: 1280,
    admInChannels: 2560,
    transformerDepths: { input: [0, 0, 4, 4, 4, 4, 0, 0], middle: 4, output: [0, 0, 0, 4, 4, 4, 4, 4, 4, 0, 0, 0] },
  },
};

describe('SDXL detection from names and shapes', () => {
  it('SDXL 1.0 base: levels, per-block depths, 64-wide heads, linear projections, adm 2816, context 768 + 1280', () => {
    const cfg = detectSdxl(shapes(SDXL_BASE_CONFIG))!;
    expect(cfg.kind).toBe('base');
    expect(cfg.unet.channelMult).toEqual([1, 2, 4]);
    expect(cfg.unet.modelChannels).toBe(320);
    expect(transformerDepths(cfg.unet)).toEqual(SDXL_BASE_CONFIG.unet.transformerDepths);
    expect(cfg.unet).toMatchObject({ contextDim: 2048, admInChannels: 2816, numHeadChannels: 64, useLinearInProj: true });
    expect(cfg.clipL).toMatchObject({ hiddenSize: 768, numLayers: 12 });
    expect(cfg.clipG).toMatchObject({ width: 1280, layers: 32, heads: 20, mlpWidth: 5120, projectionDim: 1280 });
    expect(cfg.pooledDim).toBe(1280);
    expect(cfg).toMatchObject({ prediction: 'eps', zsnr: false, clipGPrefix: 'conditioner.embedders.1.model.' });
  });

  it('the refiner: G alone under conditioner.embedders.0.model., adm 2560, its depths', () => {
    const cfg = detectSdxl(shapes(REFINER))!;
    expect(cfg.kind).toBe('refiner');
    expect(cfg.clipL).toBeUndefined();
    expect(cfg.unet).toMatchObject({ modelChannels: 384, contextDim: 1280, admInChannels: 2560 });
    expect(transformerDepths(cfg.unet)).toEqual(REFINER.unet.transformerDepths);
  });

  it('a file with an open_clip encoder at the refiner prefix but no label_emb (SD2 in the sgm layout) is left to the other families', () => {
    const l = sdxlLayout(REFINER);
    for (const k of [...l.keys()]) if (k.includes('label_emb')) l.delete(k);
    expect(detectSdxl(layoutShapes(l))).toBeUndefined();
  });

  it('SSD-1B and Segmind Vega (shallower SDXL UNets) read their depths from the file', () => {
    for (const input of [
      [0, 0, 2, 2, 4, 4],
      [0, 0, 1, 1, 2, 2],
    ]) {
      const deep = input[5];
      const unet = {
        ...SDXL_BASE_CONFIG.unet,
        transformerDepths: { input, middle: deep, output: [0, 0, 0, input[2], input[2], input[2], deep, deep, deep] },
      };
      expect(transformerDepths(detectSdxl(shapes({ ...SDXL_BASE_CONFIG, unet }))!.unet)).toEqual(unet.transformerDepths);
    }
  });

  it('v-prediction and zero terminal SNR from the v_pred / ztsnr keys (ComfyUI SDXL.model_type); Playground v2.5 from edm_mean + edm_std', () => {
    expect(detectSdxl(shapes(SDXL_BASE_CONFIG, ['v_pred']))).toMatchObject({ prediction: 'v_prediction', zsnr: false });
    expect(detectSdxl(shapes(SDXL_BASE_CONFIG, ['v_pred', 'ztsnr']))).toMatchObject({ prediction: 'v_prediction', zsnr: true });
    expect(detectSdxl(shapes(SDXL_BASE_CONFIG, ['ztsnr']))).toMatchObject({ prediction: 'eps' });
    // Playground's markers are read by presence only (ComfyUI never reads their values); one alone is ε.
    expect(detectSdxl(shapes(SDXL_BASE_CONFIG, ['edm_mean', 'edm_std', 'v_pred']))).toMatchObject({ prediction: 'edm', zsnr: false });
    expect(detectSdxl(shapes(SDXL_BASE_CONFIG, ['edm_mean']))).toMatchObject({ prediction: 'eps' });
  });

  it('CosXL: edm_vpred.sigma_max (and sigma_min, else 0.002) read from the tensors as ComfyUI reads them; a broken range is refused by key', () => {
    const withValues = (values: Record<string, number>) => {
      const src = shapes(SDXL_BASE_CONFIG, Object.keys(values));
      return { ...src, get: (n: string) => Float32Array.of(values[n]) };
    };
    expect(detectSdxl(withValues({ 'edm_vpred.sigma_max': 120, 'edm_vpred.sigma_min': 0.002 }))).toMatchObject({
      prediction: 'v_prediction_edm',
      edmSigmas: { sigmaMin: Math.fround(0.002), sigmaMax: 120 },
    });
    const only = detectSdxl(withValues({ 'edm_vpred.sigma_max': 80 }))!;
    expect(only.edmSigmas).toEqual({ sigmaMin: 0.002, sigmaMax: 80 });
    expect(builtinFamilies().get('sdxl')!.modelSampling(only).override).toEqual({
      kind: 'continuous_edm',
      prediction: 'v_prediction',
      sigmaMin: 0.002,
      sigmaMax: 80,
      sigmaData: 1,
    });
    expect(() => detectSdxl(withValues({ 'edm_vpred.sigma_max': 0.001 }))).toThrow(
      /edm_vpred\.sigma_min 0\.002 and edm_vpred\.sigma_max 0\.001/,
    );
  });

  it('the family: the registry picks SDXL before the SD1 fallback; SD1 files are not claimed; sampling and latent format', () => {
    const families = builtinFamilies();
    const hit = families.detect(shapes(tinySdxlConfig(1000)));
    expect(hit.family.id).toBe('sdxl');
    expect(detectSdxl(layoutShapes(sd1Layout(SD15_CONFIG)))).toBeUndefined();
    expect(families.detect(layoutShapes(sd1Layout(SD15_CONFIG))).family.id).toBe('sd1');
    const sdxl = families.get('sdxl')!;
    expect(sdxl.latentFormat(hit.config)).toEqual(SDXL_LATENT_FORMAT);
    expect(SDXL_LATENT_FORMAT.scaleFactor).toBe(0.13025);
    const v = detectSdxl(shapes(SDXL_BASE_CONFIG, ['v_pred', 'ztsnr']))!;
    expect(sdxl.modelSampling(v)).toMatchObject({
      prediction: 'v_prediction',
      betaSchedule: 'scaled_linear',
      override: { kind: 'discrete', prediction: 'v_prediction', zsnr: true },
    });
    expect(sdxl.modelSampling(SDXL_BASE_CONFIG)).toMatchObject({ prediction: 'eps', linearStart: 0.00085, linearEnd: 0.012 });
    expect(sdxl.modelSampling(SDXL_BASE_CONFIG).override).toBeUndefined();
  });

  it('inconsistent files are refused naming the mismatch', () => {
    const l = sdxlLayout(SDXL_BASE_CONFIG);
    l.delete('model.diffusion_model.output_blocks.2.1.transformer_blocks.0.norm2.bias');
    expect(() => detectSdxl(layoutShapes(l))).toThrow(
      /not a consistent SDXL UNet: missing model\.diffusion_model\.output_blocks\.2\.1\.transformer_blocks\.0\.norm2\.bias/,
    );
    const wrongAdm = { ...SDXL_BASE_CONFIG, unet: { ...SDXL_BASE_CONFIG.unet, admInChannels: 2560 } };
    expect(() => detectSdxl(shapes(wrongAdm))).toThrow(/label_emb takes 2560 values, expected 2816/);
    const noL = new Map([...sdxlLayout(SDXL_BASE_CONFIG)].filter(([k]) => !k.startsWith(SDXL_PREFIX.clipL)));
    expect(() => detectSdxl(layoutShapes(noL))).toThrow(/CLIP token embedding/);
    const noVae = new Map([...sdxlLayout(SDXL_BASE_CONFIG)].filter(([k]) => !k.startsWith(SDXL_PREFIX.vae)));
    expect(() => detectSdxl(layoutShapes(noVae))).toThrow(/no VAE/);
  });
});
