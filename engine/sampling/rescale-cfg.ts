import type { Tensor } from '../core/tensor.ts';
import type { SamplerCfgFunction } from '../models/handles.ts';

const f32 = Math.fround;

/** torch.std over every axis but the batch, unbiased, per batch item. */
function stdPerItem(data: Float32Array, batch: number): Float64Array {
  const per = data.length / batch;
  const out = new Float64Array(batch);
  for (let b = 0; b < batch; b++) {
    let mean = 0;
    for (let i = 0; i < per; i++) mean += data[b * per + i];
    mean /= per;
    let ss = 0;
    for (let i = 0; i < per; i++) ss += (data[b * per + i] - mean) ** 2;
    out[b] = f32(Math.sqrt(ss / (per - 1)));
  }
  return out;
}

/**
 * ComfyUI's RescaleCFG (comfy_extras/nodes_model_advanced.py, Lin et al. 2023 §3.4): CFG done on the
 * v-prediction view of both predictions, its per-item standard deviation rescaled to the positive's,
 * blended with plain CFG by `multiplier`, and turned back into x − x0. Float32 torch ops are mirrored
 * one by one; the standard deviations are summed in float64.
 */
export function rescaleCfg(multiplier: number): SamplerCfgFunction {
  const m = f32(multiplier);
  const rest = f32(1 - multiplier);
  return ({ cond, uncond, condScale, sigma, input }): Tensor => {
    const n = input.data.length;
    const batch = input.shape[0] ?? 1;
    const s = f32(sigma);
    const s2p1 = f32(f32(s * s) + 1);
    const root = f32(Math.sqrt(s2p1));
    const scale = f32(condScale);
    const x = new Float32Array(n);
    const condV = new Float32Array(n);
    const xCfg = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const xo = input.data[i];
      x[i] = xo / s2p1;
      condV[i] = f32(f32(x[i] - f32(xo - cond.data[i])) * root) / s;
      const uncondV = f32(f32(f32(x[i] - f32(xo - uncond.data[i])) * root) / s);
      xCfg[i] = uncondV + f32(scale * f32(condV[i] - uncondV));
    }
    const roPos = stdPerItem(condV, batch);
    const roCfg = stdPerItem(xCfg, batch);
    const per = n / batch;
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const b = Math.floor(i / per);
      const rescaled = f32(xCfg[i] * f32(roPos[b] / roCfg[b]));
      const final = f32(f32(m * rescaled) + f32(rest * xCfg[i]));
      out[i] = input.data[i] - f32(x[i] - f32(f32(final * s) / root));
    }
    return { shape: input.shape, data: out };
  };
}
