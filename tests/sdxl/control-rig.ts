import { join } from 'node:path';
import type { Latent, Tensor } from '../../engine/core/tensor.ts';
import type { WeightSource } from '../../engine/core/weights.ts';
import { nhwcToNchw } from '../../engine/image/layout.ts';
import { commonUpscale } from '../../engine/image/resize.ts';
import type { ControlNetConfig } from '../../engine/models/controlnet/layout.ts';
import { controlNetRef } from '../../engine/models/families/sd1/reference/controlnet.ts';
import type { SdxlClip } from '../../engine/models/families/sdxl/clip.ts';
import type { ControlResiduals, ModelHandle } from '../../engine/models/handles.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import type { Conditioning, Control, ControlRequest } from '../../engine/sampling/conditioning.ts';
import { ksample, type KSamplerArgs } from '../../engine/sampling/ksampler.ts';
import { modelSamplingFromConfig } from '../../engine/sampling/model-sampling-advanced.ts';
import { makeTinySdxl, type TinySdxl } from './tiny.ts';

/**
 * The tiny SDXL loaded for the control tests (ControlNet, Union, Control-LoRA, T2I-Adapter): prompts
 * "a red fox" / "blurry", a node context whose folders are the tiny model's, and a KSampler euler/normal
 * run at cfg 5 from an empty latent.
 */
export interface SdxlControlRig {
  tiny: TinySdxl;
  model: ModelHandle;
  pos: Conditioning;
  neg: Conditioning;
  ctx: NodeContext;
  base: KSamplerArgs;
}

export interface RigRun {
  seed: bigint;
  steps: number;
  latent: [number, number, number, number];
  /** SDXL's size conditioning on the positive prompt (else the encoder's default). */
  posSize?: { width: number; height: number };
}

export async function loadSdxlControlRig(tinySeed: number, run: RigRun): Promise<SdxlControlRig> {
  const quiet = { info: () => {}, warn: () => {}, error: () => {} };
  const tiny = await makeTinySdxl(tinySeed);
  const manager = new ModelManager({ cacheDir: join(tiny.dir, 'cache'), device: 'cpu', log: quiet });
  const parts = await manager.loadCheckpoint(tiny.file);
  const model = parts.model;
  const clip = parts.clip as SdxlClip;
  const encoded = await clip.encodeSdxl('a red fox', 'a fox');
  const pos: Conditioning = [run.posSize ? { ...encoded, size: run.posSize } : encoded];
  const neg: Conditioning = [await clip.encodeText('blurry')];
  const ctx = {
    services: { models: manager },
    log: quiet,
    paths: new FolderPaths({ baseDir: tiny.dir, modelsDir: tiny.dir }),
  } as unknown as NodeContext;
  const size = run.latent.reduce((a, b) => a * b, 1);
  const base: KSamplerArgs = {
    model,
    seed: run.seed,
    steps: run.steps,
    cfg: 5,
    samplerName: 'euler',
    scheduler: 'normal',
    positive: pos,
    negative: neg,
    latent: { samples: { shape: run.latent, data: new Float32Array(size) } },
  };
  return { tiny, model, pos, neg, ctx, base };
}

/**
 * `base` re-run with the cldm reference (controlNetRef over `config` and `weights`) as both prompts'
 * control: the hint resized to the latent as ComfyUI does, residuals scaled by `strength` in float32.
 */
export function ksampleWithReferenceControl(
  base: KSamplerArgs,
  ref: { config: ControlNetConfig; weights: WeightSource; image: Tensor; strength: number; controlType?: readonly number[] },
): Promise<Latent> {
  const ms = modelSamplingFromConfig(base.model.sampling);
  const control: Control = {
    async getControl(req: ControlRequest): Promise<ControlResiduals> {
      const [, , h, w] = req.x.shape;
      const hint = commonUpscale(nhwcToNchw(ref.image), w * 8, h * 8, 'nearest-exact', 'center');
      const x = { shape: req.x.shape, data: ms.calculateInput(req.sigma, req.x.data) };
      const r = controlNetRef(ref.config, ref.weights, x, req.timesteps, req.context, hint, req.extra?.y, ref.controlType);
      const scale = (t: Tensor): Tensor => ({ shape: t.shape, data: t.data.map((v) => Math.fround(v * ref.strength)) });
      return { input: r.input.map(scale), middle: scale(r.middle) };
    },
  };
  return ksample({
    ...base,
    positive: base.positive.map((e) => ({ ...e, control })),
    negative: base.negative.map((e) => ({ ...e, control })),
  });
}
