import { describe, expect, it } from 'vitest';
import type { Sd1Config } from '../../engine/models/config.ts';
import { UnsupportedModelError, detectCheckpoint, detectVae } from '../../engine/models/detect.ts';
import { SD15_CONFIG, sd1Layout, vaeLayout, type Layout } from '../../engine/models/sd1-layout.ts';
import type { WeightSource } from '../../engine/models/weights.ts';

/** Shapes only: detection must never need the data. */
function shapes(l: Layout): WeightSource {
  return {
    has: (n) => l.has(n),
    names: () => [...l.keys()],
    shape: (n) => l.get(n)!,
    get: () => {
      throw new Error('detection read tensor data');
    },
  };
}

const TINY: Sd1Config = {
  family: 'sd1',
  scaleFactor: 0.18215,
  unet: { ...SD15_CONFIG.unet, modelChannels: 32, contextDim: 64, channelMult: [1, 2, 4, 4] },
  clip: { ...SD15_CONFIG.clip, vocabSize: 1000, hiddenSize: 64, numLayers: 2, intermediateSize: 256, numHeads: 1 },
  vae: { ...SD15_CONFIG.vae, ch: 32, numResBlocks: 1 },
};

describe('architecture detection', () => {
  it('has the published SD1.5 sizes (UNet 859.5M, VAE 83.7M, CLIP 123.1M parameters)', () => {
    const l = sd1Layout(SD15_CONFIG);
    const params = (prefix: string) => [...l].filter(([k]) => k.startsWith(prefix)).reduce((s, [, sh]) => s + sh.reduce((a, b) => a * b, 1), 0);
    expect(params('model.diffusion_model.')).toBe(859_520_964);
    expect(params('first_stage_model.')).toBe(83_653_863);
    expect(params('cond_stage_model.')).toBe(123_060_480);
    expect([...l.keys()].filter((k) => k.startsWith('model.diffusion_model.')).length).toBe(686);
  });

  it.each([
    ['full-size SD1.5', SD15_CONFIG],
    ['the tiny test model', TINY],
    ['a two-level model without attention at level 1', { ...TINY, unet: { ...TINY.unet, channelMult: [1, 2], attentionLevels: [0], numResBlocks: 1, transformerDepth: 2 } }],
  ])('reads every width and depth of %s from shapes', (_name, cfg) => {
    expect(detectCheckpoint(shapes(sd1Layout(cfg as Sd1Config)))).toEqual(cfg);
  });

  it('names the family of SDXL, SD2 and SD3 checkpoints instead of misloading them', () => {
    const sdxl = new Map(sd1Layout(SD15_CONFIG));
    sdxl.set('conditioner.embedders.0.transformer.text_model.final_layer_norm.weight', [768]);
    expect(() => detectCheckpoint(shapes(sdxl))).toThrow(UnsupportedModelError);
    expect(() => detectCheckpoint(shapes(sdxl))).toThrow('not supported yet: detected SDXL');
    const sd2 = sd1Layout({ ...SD15_CONFIG, unet: { ...SD15_CONFIG.unet, contextDim: 1024 }, clip: { ...SD15_CONFIG.clip, hiddenSize: 1024 } });
    expect(() => detectCheckpoint(shapes(sd2))).toThrow('detected SD2.x');
    const sd3 = new Map([['model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight', [1, 1]]]);
    expect(() => detectCheckpoint(shapes(sd3))).toThrow('detected SD3');
    expect(() => detectCheckpoint(shapes(new Map([['foo', [1]]])))).toThrow(/missing model\.diffusion_model\.input_blocks\.0\.0\.weight/);
  });

  it('detects a standalone VAE with or without the first_stage_model prefix', () => {
    expect(detectVae(shapes(vaeLayout(SD15_CONFIG.vae)))).toEqual(SD15_CONFIG.vae);
    expect(detectVae(shapes(vaeLayout(SD15_CONFIG.vae, '')))).toEqual(SD15_CONFIG.vae);
    expect(() => detectVae(shapes(new Map([['encoder.down_blocks.0.resnets.0.conv1.weight', [1]]])))).toThrow(/diffusers-format VAE/);
  });
});
