import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WeightSource } from '../../engine/core/weights.ts';
import { UnsupportedModelError } from '../../engine/models/errors.ts';
import { builtinFamilies, FamilyRegistry } from '../../engine/models/families/index.ts';
import { openClipLayout } from '../../engine/models/families/openclip/config.ts';
import { SD1 } from '../../engine/models/families/sd1/index.ts';
import { unetLayout, vaeLayout, type Layout } from '../../engine/models/families/sd1/layout.ts';
import { SD2_PREFIX } from '../../engine/models/families/sd2/config.ts';
import { detectSd2, SD2_VPRED_KEY } from '../../engine/models/families/sd2/detect.ts';
import { SD2 } from '../../engine/models/families/sd2/index.ts';
import { tinySd2Config } from '../../engine/models/generate/sd2-tiny.ts';
import { makeTinySd2, type TinySd2 } from './tiny-sd2.ts';

/** Shapes of a layout with every tensor's data a constant (detection reads one norm bias for the v rule). */
function shapes(l: Layout, value = 0): WeightSource {
  return {
    has: (n) => l.has(n),
    names: () => [...l.keys()],
    shape: (n) => {
      const s = l.get(n);
      if (!s) throw new Error(`no ${n}`);
      return s;
    },
    get: (n) => new Float32Array(l.get(n)!.reduce((a, b) => a * b, 1)).fill(value),
  };
}

const cfg = tinySd2Config(870, 'eps');
function layout(over: { clipPrefix?: string; adm?: number; linear?: boolean; context?: number } = {}): Layout {
  const unet = {
    ...cfg.unet,
    useLinearInProj: over.linear ?? true,
    contextDim: over.context ?? cfg.unet.contextDim,
    admInChannels: over.adm,
  };
  return new Map([
    ...unetLayout(unet, SD2_PREFIX.unet),
    ...openClipLayout(cfg.clip, over.clipPrefix ?? SD2_PREFIX.clip),
    ...vaeLayout(cfg.vae, SD2_PREFIX.vae),
  ]);
}

/** torch.std(unbiased=False), written out here. */
function std(v: Float32Array): number {
  const m = v.reduce((a, b) => a + b, 0) / v.length;
  return Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / v.length);
}

let eps: TinySd2;
let v: TinySd2;
beforeAll(() => {
  eps = makeTinySd2('eps', 3);
  v = makeTinySd2('v_prediction', 3, eps.dir);
});
afterAll(() => rmSync(eps.dir, { recursive: true, force: true }));

describe('SD2 detection (ComfyUI supported_models.SD20)', () => {
  it('reads the generated checkpoints back: architecture from the shapes, 64-wide heads, OpenCLIP-H layout', () => {
    const got = detectSd2(eps.source)!;
    expect(got).toEqual({ ...eps.cfg, unet: { ...eps.cfg.unet } });
    expect(got.unet.numHeadChannels).toBe(64);
    expect(got.clipPrefix).toBe('cond_stage_model.model.');
  });

  it('ε or v by SD20.model_type: population std of output_blocks.11.1.transformer_blocks.0.norm1.bias above 0.09', () => {
    const key = `model.diffusion_model.${SD2_VPRED_KEY}`;
    expect(std(eps.source.get(key))).toBeLessThanOrEqual(0.09);
    expect(std(v.source.get(key))).toBeGreaterThan(0.09);
    expect(detectSd2(eps.source)!.prediction).toBe('eps');
    expect(detectSd2(v.source)!.prediction).toBe('v_prediction');
    expect(SD2.modelSampling(detectSd2(v.source)!)).toEqual({
      prediction: 'v_prediction',
      betaSchedule: 'scaled_linear',
      linearStart: 0.00085,
      linearEnd: 0.012,
      timesteps: 1000,
    });
    // The threshold is strict and on the population std: a bias of ±0.09 exactly (std 0.09) is ε.
    const l = layout();
    const at = (value: number): WeightSource => {
      const base = shapes(l);
      return {
        ...base,
        get: (n) => (n === key ? Float32Array.from({ length: l.get(n)![0] }, (_x, i) => (i % 2 ? value : -value)) : base.get(n)),
      };
    };
    expect(detectSd2(at(0.09))!.prediction).toBe('eps');
    expect(detectSd2(at(0.0901))!.prediction).toBe('v_prediction');
  });

  it('a 9-channel (inpainting) UNet is ε whatever that bias holds', () => {
    const l = layout();
    l.set('model.diffusion_model.input_blocks.0.0.weight', [64, 9, 3, 3]);
    expect(detectSd2(shapes(l, 1))!.unet.inChannels).toBe(9);
    const alternating = shapes(l);
    const key = `model.diffusion_model.${SD2_VPRED_KEY}`;
    const src: WeightSource = {
      ...alternating,
      get: (n) => (n === key ? Float32Array.from({ length: 64 }, (_x, i) => (i % 2 ? 1 : -1)) : alternating.get(n)),
    };
    expect(detectSd2(src)!.prediction).toBe('eps');
  });

  it('the sgm layout (conditioner.embedders.0.model.) is SD2 too, and binds the encoder there', () => {
    expect(detectSd2(shapes(layout({ clipPrefix: 'conditioner.embedders.0.model.' })))!.clipPrefix).toBe('conditioner.embedders.0.model.');
  });

  it('refuses SD2.1 unCLIP by name, leaves the SDXL refiner (sgm G + label_emb) to another family', () => {
    expect(() => detectSd2(shapes(layout({ adm: 1536 })))).toThrow(UnsupportedModelError);
    expect(() => detectSd2(shapes(layout({ adm: 1536 })))).toThrow(/SD2\.1 unCLIP-L \(SD21UnclipL\)/);
    expect(() => detectSd2(shapes(layout({ adm: 2048 })))).toThrow(/SD2\.1 unCLIP-H \(SD21UnclipH\)/);
    expect(detectSd2(shapes(layout({ adm: 2560, clipPrefix: 'conditioner.embedders.0.model.' })))).toBeUndefined();
  });

  it('names what is inconsistent: conv projections, a context width the text encoder does not give, a wrong shape', () => {
    expect(() => detectSd2(shapes(layout({ linear: false })))).toThrow(/proj_in is a 1×1 convolution/);
    expect(() => detectSd2(shapes(layout({ context: 128 })))).toThrow(
      /OpenCLIP text encoder is 64 wide but the UNet's cross-attention takes 128/,
    );
    const l = layout();
    l.set('model.diffusion_model.output_blocks.3.1.proj_out.weight', [64, 32]);
    expect(() => detectSd2(shapes(l))).toThrow(
      /not a consistent SD2 UNet: model\.diffusion_model\.output_blocks\.3\.1\.proj_out\.weight has shape \[64, 32\]/,
    );
  });

  it('files without an open_clip text encoder are not SD2 (SD1 layouts go on to the next family)', () => {
    const l = new Map([...unetLayout({ ...cfg.unet, useLinearInProj: false }, SD2_PREFIX.unet), ...vaeLayout(cfg.vae, SD2_PREFIX.vae)]);
    expect(detectSd2(shapes(l))).toBeUndefined();
  });

  it('registered: the built-in registry detects SD2 before the SD1 fallback, which alone refuses it by name', () => {
    expect(() => new FamilyRegistry(SD1).detect(eps.source)).toThrow(/SD2\.x/);
    const reg = new FamilyRegistry(SD1).register(SD2);
    expect(reg.detect(eps.source).family.id).toBe('sd2');
    expect(builtinFamilies().detect(v.source).family.id).toBe('sd2');
  });
});
