import { MapWeightSource, type WeightSource } from '../../engine/core/weights.ts';
import { controlNetLayout, type ControlNetConfig } from '../../engine/models/controlnet/layout.ts';

/** Tensors as the test generators return them. */
export type Tensors = Map<string, { shape: readonly number[]; data: Float32Array }>;

/** w + scale · up·down for a weight of `rows` rows (up [rows, r, ...], down [r, ...]), summed in float64. */
export function addLowRank(w: Float32Array, up: Float32Array, down: Float32Array, rank: number, scale = 1): Float32Array {
  const rows = up.length / rank;
  const rest = w.length / rows;
  const out = new Float32Array(w.length);
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < rest; j++) {
      let s = 0;
      for (let k = 0; k < rank; k++) s += up[i * rank + k] * down[k * rest + j];
      out[i * rest + j] = w[i * rest + j] + scale * s;
    }
  return out;
}

/**
 * ControlLora.pre_run's weights, assembled independently: the file's tensor, else the model's UNet
 * weight (as `unet` gives it: plain or LoRA-patched); plus up·down for the file's LoRA'd layers.
 */
export function assembleControlLora(c: ControlNetConfig, file: Tensors, unet: WeightSource): WeightSource {
  const out: Tensors = new Map();
  for (const [name, shape] of controlNetLayout(c)) {
    const base = file.get(name)?.data ?? unet.get(name);
    const mod = name.replace(/\.weight$/, '');
    const up = file.get(`${mod}.up`);
    const down = file.get(`${mod}.down`);
    const data = name.endsWith('.weight') && up && down ? addLowRank(base, up.data, down.data, up.shape[1]) : Float32Array.from(base);
    out.set(name, { shape, data });
  }
  return new MapWeightSource(out);
}
