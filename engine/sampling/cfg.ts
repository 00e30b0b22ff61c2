import type { Tensor } from '../core/tensor.ts';
import type { SamplerCfgFunction } from '../models/handles.ts';

/**
 * ComfyUI's cfg_function: uncond + (cond − uncond)·scale, or, where the model carries a
 * sampler_cfg_function (RescaleCFG), x − fn({cond: x − cond, uncond: x − uncond, …}).
 */
export function cfgCombine(
  fn: SamplerCfgFunction | undefined,
  cond: Float32Array,
  uncond: Float32Array,
  scale: number,
  x: Tensor,
  sigma: number,
): Float32Array {
  const n = cond.length;
  const out = new Float32Array(n);
  if (!fn) {
    for (let i = 0; i < n; i++) out[i] = uncond[i] + (cond[i] - uncond[i]) * scale;
    return out;
  }
  const shape = x.shape;
  const minus = (p: Float32Array): Tensor => ({ shape, data: x.data.map((v, i) => v - p[i]) });
  const r = fn({
    cond: minus(cond),
    uncond: minus(uncond),
    condScale: scale,
    sigma,
    input: x,
    condDenoised: { shape, data: cond },
    uncondDenoised: { shape, data: uncond },
  });
  if (r.data.length !== n) throw new Error(`sampler_cfg_function returned ${r.data.length} elements for a latent of ${n}`);
  for (let i = 0; i < n; i++) out[i] = x.data[i] - r.data[i];
  return out;
}
