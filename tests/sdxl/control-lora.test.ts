import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tensor } from '../../engine/core/tensor.ts';
import type { WeightSource } from '../../engine/core/weights.ts';
import { makeControlLoraFile } from '../../engine/models/controlnet/generate-control-lora.ts';
import type { ControlNetConfig } from '../../engine/models/controlnet/layout.ts';
import { readControlModel } from '../../engine/models/controlnet/load.ts';
import type { ControlNetModel } from '../../engine/models/controlnet/model.ts';
import type { ModelHandle } from '../../engine/models/handles.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import type { Conditioning, Control } from '../../engine/sampling/conditioning.ts';
import { ksample, type KSamplerArgs } from '../../engine/sampling/ksampler.ts';
import { ControlNetApplyAdvanced, ControlNetLoader } from '../../nodes/controlnet/controlnet.ts';
import '../../nodes/model/services.ts';
import { lcg, relErr } from '../models-onnx/tiny.ts';
import { assembleControlLora } from './control-lora-weights.ts';
import { ksampleWithReferenceControl, loadSdxlControlRig } from './control-rig.ts';
import type { TinySdxl } from './tiny.ts';

/*
 * Stability's Control-LoRAs as ComfyUI's ControlLora builds them: a ControlNet of the model's UNet
 * structure, the model's UNet weights where the file has none, the file's full tensors where it has
 * them, and weight + up·down for its LoRA'd layers. A tiny random Control-LoRA for the tiny SDXL (one
 * layer left to the model) in a KSampler run against the cldm reference over weights assembled here
 * in float64, and the refusals.
 */

const TOL = 1e-4;
let tiny: TinySdxl;
let model: ModelHandle;
let pos: Conditioning;
let neg: Conditioning;
let ctx: NodeContext;
let base: KSamplerArgs;
let cfg: ControlNetConfig;
let expected: WeightSource;
const image: Tensor = { shape: [1, 40, 48, 3], data: lcg(40 * 48 * 3, 6).map((v) => (v + 1) / 2) };

beforeAll(async () => {
  ({ tiny, model, pos, neg, ctx, base } = await loadSdxlControlRig(41, { seed: 11n, steps: 2, latent: [1, 4, 8, 8] }));
  cfg = { unet: { ...tiny.cfg.unet }, hintChannels: 3 };
  // time_embed.0 is left to the model, as a Control-LoRA may leave layers it did not train.
  const file = makeControlLoraFile(join(tiny.dir, 'controlnet', 'control-lora-tiny-rank4.safetensors'), cfg, {
    seed: 3,
    rank: 4,
    fromModel: ['time_embed.0.'],
  });
  expected = assembleControlLora(cfg, file, tiny.unet);
}, 120_000);
afterAll(() => tiny && rmSync(tiny.dir, { recursive: true, force: true }));

describe('Control-LoRA', () => {
  it('is read by ControlNetLoader with the UNet structure its shapes tell (SDXL: label_emb, 64-wide heads)', () => {
    const r = readControlModel(join(tiny.dir, 'controlnet', 'control-lora-tiny-rank4.safetensors'));
    expect(r.kind).toBe('control-lora');
    if (r.kind !== 'control-lora') return;
    expect(r.lora.config.hintChannels).toBe(3);
    expect(r.lora.config.unet).toMatchObject({
      admInChannels: tiny.cfg.unet.admInChannels,
      numHeadChannels: 64,
      contextDim: tiny.cfg.unet.contextDim,
      modelChannels: 64,
    });
  });

  it('in a KSampler run equals a run fed the cldm reference over the assembled weights, and changes the result', async () => {
    const net = (ControlNetLoader.run({ control_net_name: 'control-lora-tiny-rank4.safetensors' }, ctx) as [ControlNetModel])[0];
    const [p, n] = ControlNetApplyAdvanced.run(
      { positive: pos, negative: neg, control_net: net, image, strength: 0.8, start_percent: 0, end_percent: 1, vae: undefined },
      {} as never,
    ) as [Conditioning, Conditioning];
    const got = await ksample({ ...base, positive: p, negative: n });
    const want = await ksampleWithReferenceControl(base, { config: cfg, weights: expected, image, strength: 0.8 });
    expect(relErr(got.samples.data, want.samples.data)).toBeLessThan(TOL);
    const plain = await ksample(base);
    expect(relErr(got.samples.data, plain.samples.data)).toBeGreaterThan(1e-3);
  }, 180_000);

  it('made for another model is refused when sampled, naming the file and the tensor', async () => {
    const other = { unet: { ...tiny.cfg.unet, modelChannels: 128 }, hintChannels: 3 };
    makeControlLoraFile(join(tiny.dir, 'controlnet', 'narrow.safetensors'), other, { seed: 4, fromModel: ['time_embed.0.'] });
    const net = (ControlNetLoader.run({ control_net_name: 'narrow.safetensors' }, ctx) as [ControlNetModel])[0];
    const [p, n] = ControlNetApplyAdvanced.run(
      { positive: pos, negative: neg, control_net: net, image, strength: 1, start_percent: 0, end_percent: 1, vae: undefined },
      {} as never,
    ) as [Conditioning, Conditioning];
    await expect(ksample({ ...base, positive: p, negative: n })).rejects.toThrow(
      /narrow\.safetensors: the model's model\.diffusion_model\.time_embed\.0\.weight has shape .* made for another model/,
    );
  }, 60_000);

  it('without a hint encoder is refused at load, naming the file and the key', () => {
    const file = makeControlLoraFile(join(tiny.dir, 'controlnet', 'full.safetensors'), cfg, { seed: 5 });
    expect(file.has('input_hint_block.0.weight')).toBe(true);
    makeControlLoraFile(join(tiny.dir, 'controlnet', 'nohint.safetensors'), cfg, { seed: 5, fromModel: ['input_hint_block.'] });
    expect(() => readControlModel(join(tiny.dir, 'controlnet', 'nohint.safetensors'))).toThrow(
      /nohint\.safetensors: a Control-LoRA \(lora_controlnet\) without input_hint_block\.0\.weight/,
    );
  });
});
