import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tensor } from '../../engine/core/tensor.ts';
import { nhwcToNchw } from '../../engine/image/layout.ts';
import { commonUpscale } from '../../engine/image/resize.ts';
import { SafetensorsFile } from '../../engine/formats/safetensors.ts';
import { makeControlNetFile } from '../../engine/models/controlnet/generate.ts';
import type { ControlNetConfig } from '../../engine/models/controlnet/layout.ts';
import { readControlNet, type ControlNetFile } from '../../engine/models/controlnet/load.ts';
import type { ControlNetModel } from '../../engine/models/controlnet/model.ts';
import { controlNetRef } from '../../engine/models/families/sd1/reference/controlnet.ts';
import type { ModelHandle } from '../../engine/models/handles.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import type { Conditioning } from '../../engine/sampling/conditioning.ts';
import { ksample, type KSamplerArgs } from '../../engine/sampling/ksampler.ts';
import { ControlNetApplyAdvanced, ControlNetLoader } from '../../nodes/controlnet/controlnet.ts';
import { SetUnionControlNetType } from '../../nodes/controlnet/union.ts';
import '../../nodes/model/services.ts';
import { lcg, relErr } from '../models-onnx/tiny.ts';
import { ksampleWithReferenceControl, loadSdxlControlRig } from './control-rig.ts';
import type { TinySdxl } from './tiny.ts';

/*
 * ControlNet Union (xinsir's controlnet-union-sdxl-1.0 as comfy/cldm/cldm.py runs it) on a tiny random
 * Union ControlNet of the tiny SDXL's structure, in the diffusers layout ComfyUI reads it in: the
 * residuals against cldm.py in plain loops (control_add_embedding for "auto" and for a type, the
 * union merge of the hint), SetUnionControlNetType with ComfyUI's type list, a KSampler run, and the
 * refusal of a type the model does not have.
 */

const TOL = 1e-4;
/** ComfyUI's UNION_CONTROLNET_TYPES keys in order, as its node lists them after "auto" (written out here, not imported). */
const COMFY_TYPES = [
  'auto',
  'openpose',
  'depth',
  'hed/pidi/scribble/ted',
  'canny/lineart/anime_lineart/mlsd',
  'normal',
  'segment',
  'tile',
  'repaint',
];
let tiny: TinySdxl;
let model: ModelHandle;
let pos: Conditioning;
let neg: Conditioning;
let ctx: NodeContext;
let file: ControlNetFile;
let net: ControlNetModel;
let base: KSamplerArgs;
const image: Tensor = { shape: [1, 48, 40, 3], data: lcg(48 * 40 * 3, 5).map((v) => (v + 1) / 2) };

const unionCfg = (t: TinySdxl, types: number): ControlNetConfig => ({
  unet: t.cfg.unet,
  hintChannels: 3,
  union: { numControlTypes: types, width: t.cfg.unet.modelChannels, embedDim: 256, layers: 1 },
});

beforeAll(async () => {
  ({ tiny, model, pos, neg, ctx, base } = await loadSdxlControlRig(31, { seed: 3n, steps: 2, latent: [1, 4, 8, 6] }));
  makeControlNetFile(join(tiny.dir, 'controlnet', 'union.safetensors'), unionCfg(tiny, 8), { seed: 4, layout: 'diffusers' });
  makeControlNetFile(join(tiny.dir, 'controlnet', 'union6.safetensors'), unionCfg(tiny, 6), { seed: 5, layout: 'diffusers' });
  file = readControlNet(join(tiny.dir, 'controlnet', 'union.safetensors'));
  net = (ControlNetLoader.run({ control_net_name: 'union.safetensors' }, ctx) as [ControlNetModel])[0];
}, 120_000);
afterAll(() => tiny && rmSync(tiny.dir, { recursive: true, force: true }));

describe('ControlNet Union files', () => {
  it('are read in the diffusers layout with their union modules (in_proj_weight renamed as ComfyUI renames it)', () => {
    expect(file.kind).toBe('diffusers');
    expect(file.config.union).toEqual({ numControlTypes: 8, width: tiny.cfg.unet.modelChannels, embedDim: 256, layers: 1 });
    const stored = SafetensorsFile.open(file.file);
    expect(stored.has('transformer_layes.0.attn.in_proj_weight')).toBe(true);
    expect(file.weights.get('transformer_layes.0.attn.in_proj.weight')).toEqual(stored.get('transformer_layes.0.attn.in_proj_weight'));
    expect(file.weights.get('task_embedding')).toEqual(stored.get('task_embedding'));
  });
});

describe('ControlNet Union residuals against cldm.py in plain loops', () => {
  /** The residuals of `m` and of the reference for a batch of 2 with SDXL's y. */
  async function compare(
    m: ControlNetModel,
    types: readonly number[],
    cfg: ControlNetConfig = file.config,
  ): Promise<{ got: { input: Tensor[]; middle: Tensor }; want: { input: Tensor[]; middle: Tensor } }> {
    const [h, w] = [8, 6];
    const x: Tensor = { shape: [2, 4, h, w], data: lcg(2 * 4 * h * w, 7) };
    const context: Tensor = { shape: [2, 77, tiny.cfg.unet.contextDim], data: lcg(2 * 77 * tiny.cfg.unet.contextDim, 8) };
    const adm = tiny.cfg.unet.admInChannels ?? 0;
    const y: Tensor = { shape: [2, adm], data: lcg(2 * adm, 9) };
    const timesteps = Float32Array.from([500, 120.5]);
    const hint = commonUpscale(nhwcToNchw(image), w * 8, h * 8, 'nearest-exact', 'center');
    const got = await m.run({ x, timesteps, context, y, hintFeatures: await m.encodeHint(hint) });
    const want = controlNetRef(cfg, file.weights, x, timesteps, context, hint, y, types);
    return { got, want };
  }
  const err = (a: { input: Tensor[]; middle: Tensor }, b: { input: Tensor[]; middle: Tensor }): number =>
    Math.max(relErr(a.middle.data, b.middle.data), ...a.input.map((t, i) => relErr(t.data, b.input[i].data)));

  it('"auto": the plain hint encoder, and control_add_embedding of the all-zero type vector in the time embedding', async () => {
    const { got, want } = await compare(net, []);
    expect(got.input).toHaveLength(9);
    expect(err(got, want)).toBeLessThan(TOL);
    // The embedding matters: the same weights without the union modules give other residuals.
    const { want: plain } = await compare(net, [], { ...file.config, union: undefined });
    expect(err(got, plain)).toBeGreaterThan(1e-3);
  }, 60_000);

  it('a type (depth): the hint fused with its task embedding, and that type in the time embedding; differs from auto', async () => {
    const depth = net.withControlType([1]);
    const { got, want } = await compare(depth, [1]);
    expect(err(got, want)).toBeLessThan(TOL);
    const auto = await compare(net, []);
    expect(err(got, auto.got)).toBeGreaterThan(1e-3);
  }, 60_000);
});

describe('SetUnionControlNetType', () => {
  it("lists ComfyUI's types after auto and sets the type by its index; auto sets none", () => {
    const spec = SetUnionControlNetType.inputs?.required?.type;
    expect(spec && 'options' in spec ? spec.options : undefined).toEqual(COMFY_TYPES);
    const [canny] = SetUnionControlNetType.run({ control_net: net, type: 'canny/lineart/anime_lineart/mlsd' }, ctx) as [ControlNetModel];
    expect(canny.controlType).toEqual([3]);
    const [auto] = SetUnionControlNetType.run({ control_net: canny, type: 'auto' }, ctx) as [ControlNetModel];
    expect(auto.controlType).toEqual([]);
    // A copy: the loaded ControlNet keeps its own type.
    expect(net.controlType).toEqual([]);
  });

  it('in a KSampler run with ControlNetApplyAdvanced equals a run fed the reference residuals', async () => {
    const [typed] = SetUnionControlNetType.run({ control_net: net, type: 'tile' }, ctx) as [ControlNetModel];
    const [p, n] = ControlNetApplyAdvanced.run(
      { positive: pos, negative: neg, control_net: typed, image, strength: 0.7, start_percent: 0, end_percent: 1, vae: undefined },
      {} as never,
    ) as [Conditioning, Conditioning];
    const got = await ksample({ ...base, positive: p, negative: n });
    const want = await ksampleWithReferenceControl(base, {
      config: file.config,
      weights: file.weights,
      image,
      strength: 0.7,
      controlType: [6],
    });
    expect(relErr(got.samples.data, want.samples.data)).toBeLessThan(TOL);
  }, 180_000);

  it('a type the model does not have is refused, naming it and the count (ComfyUI asks for the ProMax model there)', async () => {
    const six = (ControlNetLoader.run({ control_net_name: 'union6.safetensors' }, ctx) as [ControlNetModel])[0];
    const [tile] = SetUnionControlNetType.run({ control_net: six, type: 'tile' }, ctx) as [ControlNetModel];
    const [p, n] = ControlNetApplyAdvanced.run(
      { positive: pos, negative: neg, control_net: tile, image, strength: 1, start_percent: 0, end_percent: 1, vae: undefined },
      {} as never,
    ) as [Conditioning, Conditioning];
    await expect(ksample({ ...base, positive: p, negative: n })).rejects.toThrow(
      /control type tile \(6\) is out of range .* 6 control types/,
    );
  }, 60_000);
});
