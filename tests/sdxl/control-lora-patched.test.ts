import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tensor } from '../../engine/core/tensor.ts';
import { MapWeightSource, type WeightSource } from '../../engine/core/weights.ts';
import { writeSafetensors } from '../../engine/formats/safetensors.ts';
import { makeControlLoraFile } from '../../engine/models/controlnet/generate-control-lora.ts';
import type { ControlNetConfig } from '../../engine/models/controlnet/layout.ts';
import type { ControlNetModel } from '../../engine/models/controlnet/model.ts';
import type { ClipHandle, ModelHandle } from '../../engine/models/handles.ts';
import { Rng } from '../../engine/models/generate/rng.ts';
import type { Conditioning } from '../../engine/sampling/conditioning.ts';
import { ksample } from '../../engine/sampling/ksampler.ts';
import { ControlNetApplyAdvanced, ControlNetLoader } from '../../nodes/controlnet/controlnet.ts';
import { LoraLoader } from '../../nodes/model/lora.ts';
import '../../nodes/model/services.ts';
import { lcg, relErr } from '../models-onnx/tiny.ts';
import { addLowRank, assembleControlLora, type Tensors } from './control-lora-weights.ts';
import { ksampleWithReferenceControl, loadSdxlControlRig, type SdxlControlRig } from './control-rig.ts';

/*
 * A Control-LoRA applied to a model that LoraLoader has already patched: ComfyUI's ControlLora.pre_run
 * reads `diffusion_model.state_dict()` with the LoRA's patches on, so the ControlNet's layers taken
 * from the model carry the LoRA, and its own LoRA'd layers add up·down on top of the patched weight.
 * The reference patches the UNet weights here in float64 (kohya LoRA: w + strength · α/r · up·down)
 * and runs the cldm reference over the assembled weights beside Weft's KSampler.
 */

const TOL = 1e-4;
const STRENGTH = 0.8;
const RANK = 4;
const ALPHA = 2;
/**
 * Layers the LoRA patches (LDM names): one the Control-LoRA takes from the model as it is (time_embed.0),
 * some where the Control-LoRA adds its own up·down (a conv, a transformer's proj_in and cross-attention
 * key, label_emb), and one the ControlNet does not have (an output block).
 */
const PATCHED = [
  'time_embed.0.weight',
  'input_blocks.1.0.in_layers.2.weight',
  'input_blocks.4.1.proj_in.weight',
  'middle_block.1.transformer_blocks.0.attn2.to_k.weight',
  'label_emb.0.0.weight',
  'output_blocks.0.0.in_layers.2.weight',
];

let rig: SdxlControlRig;
let clip: ClipHandle;
let cfg: ControlNetConfig;
let controlFile: Tensors;
let lora: Tensors;
const image: Tensor = { shape: [1, 40, 48, 3], data: lcg(40 * 48 * 3, 9).map((v) => (v + 1) / 2) };

/** A kohya-named LoRA over PATCHED (up [out, r(, 1, 1)], down [r, in(, k, k)], alpha), random float32. */
function writeLora(file: string, unet: WeightSource): Tensors {
  const rng = new Rng(21);
  const out: Tensors = new Map();
  for (const name of PATCHED) {
    const shape = unet.shape(name);
    const stem = `lora_unet_${name.replace(/\.weight$/, '').replace(/\./g, '_')}`;
    const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
    const upShape = shape.length === 4 ? [shape[0], RANK, 1, 1] : [shape[0], RANK];
    const downShape = [RANK, ...shape.slice(1)];
    const n = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
    out.set(`${stem}.lora_up.weight`, { shape: upShape, data: rng.normal(new Float32Array(n(upShape)), 0.5) });
    out.set(`${stem}.lora_down.weight`, { shape: downShape, data: rng.normal(new Float32Array(n(downShape)), 1 / Math.sqrt(fanIn)) });
    out.set(`${stem}.alpha`, { shape: [], data: new Float32Array([ALPHA]) });
  }
  mkdirSync(join(file, '..'), { recursive: true });
  writeSafetensors(
    file,
    [...out].map(([name, t]) => ({ name, dtype: 'F32' as const, shape: t.shape, data: () => t.data })),
  );
  return out;
}

/** The UNet's weights with the LoRA applied at `strength`, computed here (float64 sums). */
function patchedUnet(unet: WeightSource, strength: number): WeightSource {
  const map: Tensors = new Map();
  for (const name of PATCHED) {
    const stem = `lora_unet_${name.replace(/\.weight$/, '').replace(/\./g, '_')}`;
    const up = lora.get(`${stem}.lora_up.weight`)!.data;
    const down = lora.get(`${stem}.lora_down.weight`)!.data;
    map.set(name, { shape: unet.shape(name), data: addLowRank(unet.get(name), up, down, RANK, (strength * ALPHA) / RANK) });
  }
  const patched = new MapWeightSource(map);
  return {
    has: (n) => unet.has(n),
    names: () => unet.names(),
    shape: (n) => unet.shape(n),
    get: (n) => (patched.has(n) ? patched.get(n) : unet.get(n)),
  };
}

beforeAll(async () => {
  rig = await loadSdxlControlRig(43, { seed: 13n, steps: 2, latent: [1, 4, 8, 8] });
  const models = rig.ctx.services.models;
  if (!models) throw new Error('the control rig has no model manager');
  clip = (await models.loadCheckpoint(rig.tiny.file)).clip;
  cfg = { unet: { ...rig.tiny.cfg.unet }, hintChannels: 3 };
  controlFile = makeControlLoraFile(join(rig.tiny.dir, 'controlnet', 'control-lora-on-lora.safetensors'), cfg, {
    seed: 7,
    rank: 4,
    fromModel: ['time_embed.0.'],
  });
  lora = writeLora(join(rig.tiny.dir, 'loras', 'tiny-sdxl-unet-lora.safetensors'), rig.tiny.unet);
}, 120_000);
afterAll(() => rig && rmSync(rig.tiny.dir, { recursive: true, force: true }));

/** KSampler with the Control-LoRA applied to the rig's prompts, sampling `model`. */
async function sampleWith(model: ModelHandle, net: ControlNetModel): Promise<Float32Array> {
  const [p, n] = ControlNetApplyAdvanced.run(
    { positive: rig.pos, negative: rig.neg, control_net: net, image, strength: STRENGTH, start_percent: 0, end_percent: 1, vae: undefined },
    {} as never,
  ) as [Conditioning, Conditioning];
  return (await ksample({ ...rig.base, model, positive: p, negative: n })).samples.data;
}

describe('Control-LoRA on a LoRA-patched model', () => {
  it('builds its ControlNet from the patched UNet weights: equals the cldm reference over them, not over the unpatched ones', async () => {
    const [patched] = LoraLoader.run(
      { model: rig.model, clip, lora_name: 'tiny-sdxl-unet-lora.safetensors', strength_model: 1, strength_clip: 0 },
      rig.ctx,
    ) as [ModelHandle, ClipHandle];
    expect(patched.id).not.toBe(rig.model.id);
    const net = (ControlNetLoader.run({ control_net_name: 'control-lora-on-lora.safetensors' }, rig.ctx) as [ControlNetModel])[0];
    const got = await sampleWith(patched, net);
    const ref = (unet: WeightSource) =>
      ksampleWithReferenceControl(
        { ...rig.base, model: patched },
        { config: cfg, weights: assembleControlLora(cfg, controlFile, unet), image, strength: STRENGTH },
      );
    const want = await ref(patchedUnet(rig.tiny.unet, 1));
    expect(relErr(got, want.samples.data)).toBeLessThan(TOL);
    // The LoRA's share of the ControlNet is visible at this tolerance: the unpatched weights give another result.
    const unpatched = await ref(rig.tiny.unet);
    expect(relErr(got, unpatched.samples.data)).toBeGreaterThan(1e-3);
  }, 240_000);

  it('one Control-LoRA sampled with the plain model, then with a LoRA-patched one at another strength, gives each model its own ControlNet', async () => {
    const net = (ControlNetLoader.run({ control_net_name: 'control-lora-on-lora.safetensors' }, rig.ctx) as [ControlNetModel])[0];
    const plain = await sampleWith(rig.model, net);
    const plainWant = await ksampleWithReferenceControl(rig.base, {
      config: cfg,
      weights: assembleControlLora(cfg, controlFile, rig.tiny.unet),
      image,
      strength: STRENGTH,
    });
    expect(relErr(plain, plainWant.samples.data)).toBeLessThan(TOL);
    const [patched] = LoraLoader.run(
      { model: rig.model, clip, lora_name: 'tiny-sdxl-unet-lora.safetensors', strength_model: 0.5, strength_clip: 0 },
      rig.ctx,
    ) as [ModelHandle, ClipHandle];
    const got = await sampleWith(patched, net);
    const want = await ksampleWithReferenceControl(
      { ...rig.base, model: patched },
      { config: cfg, weights: assembleControlLora(cfg, controlFile, patchedUnet(rig.tiny.unet, 0.5)), image, strength: STRENGTH },
    );
    expect(relErr(got, want.samples.data)).toBeLessThan(TOL);
  }, 240_000);
});
