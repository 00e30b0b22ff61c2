import { beforeAll, describe, expect, it } from 'vitest';
import type { Latent, Tensor } from '../../engine/core/tensor.ts';
import type { ModelHandle } from '../../engine/models/handles.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import type { Conditioning } from '../../engine/sampling/conditioning.ts';
import { cfgGuider } from '../../engine/sampling/guider.ts';
import { ksample } from '../../engine/sampling/ksampler.ts';
import { LatentApplyOperationCFG } from '../../nodes/latent/latent-operation-cfg.ts';
import { tonemapReinhard, type LatentOperation } from '../../nodes/latent/latent-operations.ts';
import { RescaleCFG } from '../../nodes/model/model-sampling.ts';
import { lcg, relErr } from '../models-onnx/tiny.ts';
import { loadTinyParts } from './tiny-parts.ts';

/**
 * LatentApplyOperationCFG on the tiny SD1 checkpoint: the guider's pre-CFG hook replaces the cond x0
 * prediction by op(cond − uncond) + uncond before CFG, as ComfyUI's sampling_function does. The
 * reference takes the cond and uncond predictions from separate cfg = 1 runs of the unpatched model and
 * combines them here in float64.
 */

const ctx = {} as NodeContext;
const patch = async (model: ModelHandle, operation: LatentOperation): Promise<ModelHandle> =>
  ((await LatentApplyOperationCFG.run({ model, operation } as never, ctx)) as [ModelHandle])[0];

describe('LatentApplyOperationCFG', () => {
  let model: ModelHandle;
  let pos: Conditioning;
  let neg: Conditioning;
  beforeAll(async () => {
    ({ model, pos, neg } = await loadTinyParts());
  }, 60_000);
  const shape = [1, 4, 8, 8];
  const x: Tensor = { shape, data: lcg(256, 11, 3) };
  const sigma = 4.2;
  const denoise = async (m: ModelHandle, positive: Conditioning, negative: Conditioning, cfg: number) =>
    (await cfgGuider({ model: m, positive, negative, cfg }).denoiser(shape)(x, sigma)).data;
  const op = tonemapReinhard(0.5);

  it('cfg 7: uncond + (op(cond − uncond) + uncond − uncond)·7, cond and uncond from the unpatched model', async () => {
    const cond = await denoise(model, pos, [], 1);
    const uncond = await denoise(model, neg, [], 1);
    const diff = op({ shape, data: Float32Array.from(cond, (v, i) => v - uncond[i]!) }).data;
    const want = Array.from(uncond, (u, i) => u + (diff[i]! + u - u) * 7);
    const got = await denoise(await patch(model, op), pos, neg, 7);
    // cond and uncond run batched in the patched guider and one by one in the reference
    expect(relErr(got, want)).toBeLessThan(1e-5);
    // the operation does change the result
    expect(relErr(await denoise(model, pos, neg, 7), want)).toBeGreaterThan(1e-3);
  }, 60_000);

  it('cfg 1: the skipped negative is zeros, so the result is op(cond), bit for bit', async () => {
    const cond = await denoise(model, pos, neg, 1);
    const want = op({ shape, data: cond }).data;
    expect(await denoise(await patch(model, op), pos, neg, 1)).toEqual(want);
  }, 60_000);

  it('operations chain in order, survive a re-patch and a later RescaleCFG, and a KSampler run changes', async () => {
    const twice = await patch(await patch(model, op), tonemapReinhard(2));
    expect(twice.samplerPreCfgFunctions?.length).toBe(2);
    const again = twice.patching?.withPatches(twice.patching.patches);
    if (again) expect(again.samplerPreCfgFunctions?.length).toBe(2);
    const rescaled = ((await RescaleCFG.run({ model: twice, multiplier: 0.5 } as never, ctx)) as [ModelHandle])[0];
    expect(rescaled.samplerPreCfgFunctions).toBe(twice.samplerPreCfgFunctions);
    const latent = (): Latent => ({ samples: { shape, data: new Float32Array(256) } });
    const run = (m: ModelHandle) =>
      ksample({
        model: m,
        seed: 5n,
        steps: 3,
        cfg: 5,
        samplerName: 'euler',
        scheduler: 'normal',
        positive: pos,
        negative: neg,
        latent: latent(),
      });
    const plain = (await run(model)).samples.data;
    const patched = (await run(twice)).samples.data;
    expect(patched.every(Number.isFinite)).toBe(true);
    expect(patched).not.toEqual(plain);
    // An identity operation leaves sampling as it was, up to float32 (cond − uncond) + uncond rounding.
    const identity = await patch(model, (t) => t);
    expect(relErr((await run(identity)).samples.data, plain)).toBeLessThan(1e-5);
  }, 120_000);
});
