import { describe, expect, it } from 'vitest';
import type { UNetConfig } from '../../engine/models/families/sd1/config.ts';
import { detectUnet, readUnetConfig } from '../../engine/models/families/sd1/detect.ts';
import { tinyConfig } from '../../engine/models/make-model.ts';
import { SD15_CONFIG, layoutShapes, unetLayout, type Layout } from '../../engine/models/families/sd1/layout.ts';
import { compactDepths, transformerDepths, unetPlan } from '../../engine/models/families/sd1/unet-plan.ts';

/** Shapes only: detection must never need the data. */
const shapes = layoutShapes;

const params = (l: Layout): number => [...l.values()].reduce((s, sh) => s + sh.reduce((a, b) => a * b, 1), 0);

/** SDXL base's UNet as ComfyUI's supported_models.SDXL configures it. */
const SDXL_UNET: UNetConfig = {
  ...SD15_CONFIG.unet,
  channelMult: [1, 2, 4],
  contextDim: 2048,
  useLinearInProj: true,
  numHeadChannels: 64,
  admInChannels: 2816,
  transformerDepths: { input: [0, 0, 2, 2, 10, 10], middle: 10, output: [0, 0, 0, 2, 2, 2, 10, 10, 10] },
};
/** SD2.x's UNet: SD1's structure with 1024-wide cross-attention, 64-wide heads and linear projections. */
const SD2_UNET: UNetConfig = { ...SD15_CONFIG.unet, contextDim: 1024, useLinearInProj: true, numHeadChannels: 64 };

describe('UNet plan', () => {
  it("SD1.5: 12 skips with ComfyUI's input_block_chans, in the order the output blocks pop them", () => {
    const plan = unetPlan(SD15_CONFIG.unet);
    // openaimodel.UNetModel's input_block_chans for model_channels 320, channel_mult (1, 2, 4, 4), 2 res blocks.
    expect(plan.skipChannels).toEqual([320, 320, 320, 320, 640, 640, 640, 1280, 1280, 1280, 1280, 1280]);
    expect(plan.output.map((b) => b.skip)).toEqual([11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    // Output block i concatenates h with its skip: ComfyUI's ResBlock(ch + ich) input widths.
    expect(plan.output.map((b) => b.res.inChannels)).toEqual([2560, 2560, 2560, 2560, 2560, 1920, 1920, 1280, 960, 960, 640, 640]);
    expect(plan.embDim).toBe(1280);
  });

  it('SD1.5: the block names LDM checkpoints use, with transformers at levels 0-2 and 8 heads of width channels/8', () => {
    const plan = unetPlan(SD15_CONFIG.unet);
    expect(plan.input.map((b) => b.kind)).toEqual([
      'conv_in',
      'res',
      'res',
      'downsample',
      'res',
      'res',
      'downsample',
      'res',
      'res',
      'downsample',
      'res',
      'res',
    ]);
    expect(plan.input.map((b) => b.conv ?? b.res?.key)).toEqual([
      'input_blocks.0.0',
      'input_blocks.1.0',
      'input_blocks.2.0',
      'input_blocks.3.0.op',
      'input_blocks.4.0',
      'input_blocks.5.0',
      'input_blocks.6.0.op',
      'input_blocks.7.0',
      'input_blocks.8.0',
      'input_blocks.9.0.op',
      'input_blocks.10.0',
      'input_blocks.11.0',
    ]);
    expect(plan.input.flatMap((b) => (b.transformer ? [b.transformer.key] : []))).toEqual([
      'input_blocks.1.1',
      'input_blocks.2.1',
      'input_blocks.4.1',
      'input_blocks.5.1',
      'input_blocks.7.1',
      'input_blocks.8.1',
    ]);
    expect(plan.middle.res.map((r) => r.key)).toEqual(['middle_block.0', 'middle_block.2']);
    expect(plan.middle.transformer).toEqual({ key: 'middle_block.1', channels: 1280, depth: 1, heads: 8 });
    expect(plan.output.flatMap((b) => (b.upsample ? [b.upsample] : []))).toEqual([
      'output_blocks.2.1.conv',
      'output_blocks.5.2.conv',
      'output_blocks.8.2.conv',
    ]);
    expect(plan.output.filter((b) => b.transformer).map((b) => b.transformer!.key)).toEqual(
      [3, 4, 5, 6, 7, 8, 9, 10, 11].map((o) => `output_blocks.${o}.1`),
    );
    // Residual 1×1 skip convs only where a res block changes width.
    expect(
      [...plan.input.flatMap((b) => (b.res ? [b.res] : [])), ...plan.output.map((b) => b.res)]
        .filter((r) => r.inChannels !== r.outChannels)
        .map((r) => r.key),
    ).toEqual(['input_blocks.4.0', 'input_blocks.7.0', ...Array.from({ length: 12 }, (_, o) => `output_blocks.${o}.0`)]);
  });

  it('lays out the published SDXL (2,567,463,684 parameters in 1,680 tensors) and SD2 (865,910,724) UNets from their configs', () => {
    const xl = unetLayout(SDXL_UNET, '');
    expect([xl.size, params(xl)]).toEqual([1680, 2_567_463_684]);
    expect(xl.get('label_emb.0.0.weight')).toEqual([1280, 2816]);
    expect(xl.get('input_blocks.4.1.proj_in.weight')).toEqual([640, 640]);
    expect(xl.has('input_blocks.1.1.norm.weight')).toBe(false);
    expect(xl.has('middle_block.1.transformer_blocks.9.attn2.to_k.weight')).toBe(true);
    expect(xl.get('output_blocks.0.1.transformer_blocks.9.attn2.to_k.weight')).toEqual([1280, 2048]);
    expect(xl.has('output_blocks.6.1.norm.weight')).toBe(false);
    expect(xl.get('output_blocks.5.2.conv.weight')).toEqual([640, 640, 3, 3]);
    const plan = unetPlan(SDXL_UNET);
    expect(plan.skipChannels).toEqual([320, 320, 320, 320, 640, 640, 640, 1280, 1280]);
    expect(plan.input.flatMap((b) => (b.transformer ? [[b.transformer.depth, b.transformer.heads]] : []))).toEqual([
      [2, 10],
      [2, 10],
      [10, 20],
      [10, 20],
    ]);
    expect(plan.output.map((b) => b.transformer?.depth ?? 0)).toEqual([10, 10, 10, 2, 2, 2, 0, 0, 0]);
    const sd2 = unetLayout(SD2_UNET, '');
    expect([sd2.size, params(sd2)]).toEqual([686, 865_910_724]);
    expect(unetPlan(SD2_UNET).input[1].transformer!.heads).toBe(5);
  });

  it('a middle depth of -1 leaves the middle block one ResBlock, as ComfyUI does', () => {
    const plan = unetPlan({ ...SDXL_UNET, transformerDepths: { ...SDXL_UNET.transformerDepths!, middle: -1 } });
    expect(plan.middle.res.map((r) => r.key)).toEqual(['middle_block.0']);
    expect(plan.middle.transformer).toBeUndefined();
  });

  it('refuses depth lists that do not fit the structure', () => {
    expect(() => unetPlan({ ...SDXL_UNET, transformerDepths: { input: [1, 1], middle: 1, output: [] } })).toThrow(
      '2 input transformer depths for 6 input res blocks',
    );
    expect(() => unetPlan({ ...SD2_UNET, numHeadChannels: 48 })).toThrow('320 channels do not split into 48-wide heads');
  });

  it("SD1's form expands to per-block lists and compacts back; lists that differ per block stay", () => {
    const d = transformerDepths(SD15_CONFIG.unet);
    expect(d).toEqual({ input: [1, 1, 1, 1, 1, 1, 0, 0], middle: 1, output: [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0] });
    expect(compactDepths({ ...SD15_CONFIG.unet, attentionLevels: [], transformerDepth: 7, transformerDepths: d })).toEqual(
      SD15_CONFIG.unet,
    );
    expect(compactDepths(SDXL_UNET)).toBe(SDXL_UNET);
  });
});

describe('UNet detection walks the plan', () => {
  it('finds the tiny SD1 model and SD1.5 as before', () => {
    const tiny = tinyConfig(1000).unet;
    expect(detectUnet(shapes(unetLayout(tiny)))).toEqual(tiny);
    expect(detectUnet(shapes(unetLayout(SD15_CONFIG.unet)))).toEqual(SD15_CONFIG.unet);
    expect(readUnetConfig(shapes(unetLayout(tiny)))).toEqual(tiny);
  });

  it("reads an SDXL-shaped UNet's depth lists, linear projections and label_emb width from shapes alone", () => {
    // Head width is not in the shapes (SD1's 8 heads stay); everything else is read.
    const { numHeadChannels: _h, ...shaped } = SDXL_UNET;
    expect(readUnetConfig(shapes(unetLayout(SDXL_UNET)))).toEqual(shaped);
    const tinyXl: UNetConfig = {
      ...shaped,
      modelChannels: 32,
      contextDim: 48,
      admInChannels: 24,
      transformerDepths: { input: [0, 0, 1, 1, 2, 2], middle: -1, output: [0, 0, 0, 1, 1, 1, 2, 2, 2] },
    };
    expect(readUnetConfig(shapes(unetLayout(tinyXl, '')), '')).toEqual(tinyXl);
  });
});
