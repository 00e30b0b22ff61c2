import type { Tensor } from '../core/tensor.ts';
import type { ModelHandle } from '../models/handles.ts';
import { piece, resolve, type Piece, type ResolvedEntry } from './cond-areas.ts';
import { runPieces } from './cond-batch.ts';
import type { Conditioning } from './conditioning.ts';
import { controlsToUncond } from './control.ts';
import type { Guider } from './guider.ts';
import { cfgCombine } from './cfg.ts';
import { modelCall } from './model-call.ts';
import type { Denoised, DenoiseRequest } from './samplers/types.ts';
import { modelSamplingFromConfig } from './model-sampling-advanced.ts';

/**
 * ComfyUI's DualCFGGuider (Guider_DualCFG.predict_noise): three conditionings evaluated together
 * (negative, middle, positive, in calc_cond_batch's order), combined as
 *   regular: neg + (mid − neg)·cfg2 + (pos − mid)·cfg1
 *   nested:  neg + cfg2·((mid + (pos − mid)·cfg1) − neg)
 * In the regular style, cfg2 ≈ 1 drops the negative and then cfg1 ≈ 1 the middle too (their
 * predictions are zero, as calc_cond_batch leaves a None conditioning), as ComfyUI's cfg1
 * optimization does. ComfyUI marks the middle conditioning `prompt_type: negative`, which only
 * models that read that key use; SD1-family models do not.
 */

export interface DualCfgGuiderOptions {
  model: ModelHandle;
  cond1: Conditioning;
  cond2: Conditioning;
  negative: Conditioning;
  cfgConds: number;
  cfgCond2Negative: number;
  style: 'regular' | 'nested';
  maxBatch?: number;
}

/** math.isclose with its default rel_tol 1e-9. */
const isClose = (a: number, b: number): boolean => Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b));
const f32 = Math.fround;

export function dualCfgGuider(o: DualCfgGuiderOptions): Guider {
  const ms = modelSamplingFromConfig(o.model.sampling);
  const cfg1 = f32(o.cfgConds);
  const cfg2 = f32(o.cfgCond2Negative);
  const nested = o.style === 'nested';
  const dropNegative = !nested && isClose(o.cfgCond2Negative, 1);
  const dropMiddle = dropNegative && isClose(o.cfgConds, 1);
  return {
    model: o.model,
    modelSampling: ms,
    denoiser(shape, run) {
      const cfgFn = o.model.samplerCfgFunction;
      const resolved = (group: number, conds: Conditioning, promptType: 'positive' | 'middle'): (() => ResolvedEntry[]) => {
        let r: ResolvedEntry[] | undefined;
        return () => (r ??= resolve(conds, group, shape, ms, o.model.extraConds, promptType));
      };
      const positive = resolved(2, o.cond1, 'positive');
      positive();
      const middle = resolved(1, o.cond2, 'middle');
      let neg: ResolvedEntry[] | undefined;
      const negative = (): ResolvedEntry[] => {
        if (!neg) {
          neg = resolve(o.negative, 0, shape, ms, o.model.extraConds, 'negative');
          controlsToUncond(positive(), neg);
        }
        return neg;
      };
      if (!dropNegative) negative();
      const batching = {
        apply: modelCall(o.model, ms),
        modelSampling: ms,
        model: o.model,
        maxBatch: o.maxBatch ?? 64,
        signal: run?.signal,
        sigmas: run?.sigmas,
        seed: run?.seed,
        deferControl: o.model.wrappers?.some((w) => w.controlPerTile) ?? false,
      };
      return async (x: Tensor, sigma: number, request?: DenoiseRequest): Promise<Denoised> => {
        const n = x.data.length;
        // A CFG++ sampler turns the cfg1 optimization off (disable_cfg1_optimization).
        const keepAll = request?.uncond === true;
        const groups = [dropNegative && !keepAll ? [] : negative(), dropMiddle && !keepAll ? [] : middle(), positive()];
        const outs = groups.map(() => new Float32Array(n));
        const counts = groups.map(() => new Float32Array(n).fill(1e-37));
        const pieces = groups
          .flat()
          .map((e) => piece(e, x.shape, sigma, run?.sigmas))
          .filter((p): p is Piece => p !== undefined);
        await runPieces(pieces, x, sigma, { outs, counts }, batching);
        outs.forEach((v, g) => {
          for (let i = 0; i < n; i++) v[i] /= counts[g][i];
        });
        const [neg, mid, pos] = outs;
        const out = new Float32Array(n);
        if (nested) {
          const text = cfgFn ? cfgCombine(cfgFn, pos, mid, cfg1, x, sigma) : undefined;
          for (let i = 0; i < n; i++) {
            const t = text ? text[i] : f32(mid[i] + f32(f32(pos[i] - mid[i]) * cfg1));
            out[i] = neg[i] + f32(cfg2 * f32(t - neg[i]));
          }
        } else {
          const combined = cfgFn ? cfgCombine(cfgFn, mid, neg, cfg2, x, sigma) : undefined;
          for (let i = 0; i < n; i++) {
            const cfgResult = combined ? combined[i] : f32(neg[i] + f32(f32(mid[i] - neg[i]) * cfg2));
            out[i] = cfgResult + f32(f32(pos[i] - mid[i]) * cfg1);
          }
        }
        // cfg_function's uncond: the negative (regular) or the middle (nested).
        const uncond = nested ? mid : neg;
        return request?.uncond ? { shape: x.shape, data: out, uncond: { shape: x.shape, data: uncond } } : { shape: x.shape, data: out };
      };
    },
  };
}
