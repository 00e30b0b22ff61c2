import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import type { Tensor } from '../../engine/core/tensor.ts';
import { writeSafetensors } from '../../engine/formats/safetensors.ts';
import { makeControlNetFile } from '../../engine/models/controlnet/generate.ts';
import { readControlNet, type ControlNetFile } from '../../engine/models/controlnet/load.ts';
import type { ControlNetModel } from '../../engine/models/controlnet/model.ts';
import type { ModelHandle } from '../../engine/models/handles.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import type { Conditioning } from '../../engine/sampling/conditioning.ts';
import { ksample, type KSamplerArgs } from '../../engine/sampling/ksampler.ts';
import { ControlNetApplyAdvanced, ControlNetLoader } from '../../nodes/controlnet/controlnet.ts';
import '../../nodes/model/services.ts';
import { lcg, relErr } from '../models-onnx/tiny.ts';
import { ksampleWithReferenceControl, loadSdxlControlRig } from './control-rig.ts';
import type { TinySdxl } from './tiny.ts';

/* An SDXL ControlNet (the UNet's encoder half with label_emb, so it takes y) in a KSampler run on the tiny SDXL. */

let tiny: TinySdxl;
let model: ModelHandle;
let pos: Conditioning;
let neg: Conditioning;
let net: ControlNetModel;
let cn: ControlNetFile;
let base: KSamplerArgs;
const image: Tensor = { shape: [1, 64, 64, 3], data: lcg(64 * 64 * 3, 5).map((v) => (v + 1) / 2) };

beforeAll(async () => {
  let ctx: NodeContext;
  ({ tiny, model, pos, neg, ctx, base } = await loadSdxlControlRig(12, {
    seed: 42n,
    steps: 2,
    latent: [1, 4, 8, 8],
    posSize: { width: 1024, height: 1024 },
  }));
  const file = join(tiny.dir, 'controlnet', 'weft-tiny-sdxl-controlnet.safetensors');
  makeControlNetFile(file, { unet: tiny.cfg.unet, hintChannels: 3 }, { seed: 8 });
  cn = readControlNet(file);
  net = (ControlNetLoader.run({ control_net_name: 'weft-tiny-sdxl-controlnet.safetensors' }, ctx) as [ControlNetModel])[0];
}, 120_000);
afterAll(() => tiny && rmSync(tiny.dir, { recursive: true, force: true }));

describe('SDXL ControlNet (single-file layout) on the tiny SDXL', () => {
  it('is read with the UNet structure of its model: label_emb, 64-wide heads, linear projections', () => {
    expect(cn.config.unet).toMatchObject({
      admInChannels: tiny.cfg.unet.admInChannels,
      numHeadChannels: 64,
      useLinearInProj: true,
      contextDim: tiny.cfg.unet.contextDim,
    });
    // The diffusers layout (add_embedding, transformer_layers_per_block) reads to the same structure and weights.
    const diffusers = join(tiny.dir, 'controlnet', 'xl-diffusers.safetensors');
    makeControlNetFile(diffusers, { unet: tiny.cfg.unet, hintChannels: 3 }, { seed: 8, layout: 'diffusers' });
    const d = readControlNet(diffusers);
    expect(d.config).toEqual(cn.config);
    // A Union ControlNet (ComfyUI tells it by control_add_embedding) would run without its control-type modules: refused by name.
    const union = join(tiny.dir, 'controlnet', 'xl-union.safetensors');
    const weights = makeControlNetFile(
      join(tiny.dir, 'controlnet', 'xl-bare.safetensors'),
      { unet: tiny.cfg.unet, hintChannels: 3 },
      { seed: 8, layout: 'single-file-bare' },
    );
    writeSafetensors(union, [
      ...[...weights].map(([name, t]) => ({ name, dtype: 'F32' as const, shape: t.shape, data: t.data })),
      { name: 'control_add_embedding.linear_1.bias', dtype: 'F32', shape: [4], data: new Float32Array(4) },
    ]);
    expect(() => readControlNet(union)).toThrow(/ControlNet Union/);
    for (const k of ['label_emb.0.0.weight', 'input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight', 'zero_convs.3.0.weight'])
      expect(d.weights.get(k)).toEqual(cn.weights.get(k));
  });

  it('ControlNetApplyAdvanced equals a run fed the reference residuals (cldm with the entry y), and changes the result', async () => {
    const [p, n] = ControlNetApplyAdvanced.run(
      { positive: pos, negative: neg, control_net: net, image, strength: 0.9, start_percent: 0, end_percent: 1, vae: undefined },
      {} as never,
    ) as [Conditioning, Conditioning];
    const got = await ksample({ ...base, positive: p, negative: n });
    const want = await ksampleWithReferenceControl(base, { config: cn.config, weights: cn.weights, image, strength: 0.9 });
    expect(relErr(got.samples.data, want.samples.data)).toBeLessThan(1e-4);
    const plain = await ksample(base);
    expect(relErr(got.samples.data, plain.samples.data)).toBeGreaterThan(1e-3);
  }, 180_000);
});
