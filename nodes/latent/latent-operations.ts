import { describeShape, type Latent, type Tensor } from '../../engine/core/tensor.ts';
import { comfySharpenKernel, convolveReflect } from '../../engine/image/filters.ts';
import { defineNode } from '../../engine/registry/types.ts';

/**
 * ComfyUI's LATENT_OPERATION nodes (comfy_extras/nodes_latent.py, experimental): an operation is a
 * function of the [B, C, H, W] samples; LatentApplyOperation applies one to a LATENT.
 * LatentApplyOperationCFG (latent-operation-cfg.ts) runs one inside CFG, on cond − uncond.
 */

export type LatentOperation = (latent: Tensor) => Tensor;

declare module '../../engine/registry/sockets.ts' {
  interface SocketValueTypes {
    LATENT_OPERATION: LatentOperation;
  }
}

const f = Math.fround;

/** ‖x[b, :, y, x]‖₂ + eps per pixel: [B, H, W] as float32 values. */
function magnitudes(t: Tensor, eps: number): Float32Array {
  if (t.shape.length !== 4) throw new Error(`a latent operation needs [B, C, H, W] samples, got ${describeShape(t.shape)}`);
  const [B, C, H, W] = t.shape;
  const hw = H * W;
  const acc = new Float64Array(B * hw);
  for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) for (let p = 0; p < hw; p++) acc[b * hw + p] += t.data[(b * C + c) * hw + p] ** 2;
  const out = new Float32Array(B * hw);
  for (let i = 0; i < out.length; i++) out[i] = f(f(Math.sqrt(acc[i])) + eps);
  return out;
}

/**
 * Reinhard tone mapping of the per-pixel magnitudes: each item's top = (5·std + mean)·multiplier
 * (std unbiased, over the item's pixels), m ← top·(m/top)/(m/top + 1), directions kept.
 */
export function tonemapReinhard(multiplier: number): LatentOperation {
  return (latent) => {
    const [B, C, H, W] = latent.shape;
    const hw = H * W;
    const m = magnitudes(latent, 1e-10);
    const out = new Float32Array(latent.data.length);
    for (let b = 0; b < B; b++) {
      let mean = 0;
      for (let p = 0; p < hw; p++) mean += m[b * hw + p];
      mean /= hw;
      let v = 0;
      for (let p = 0; p < hw; p++) v += (m[b * hw + p] - mean) ** 2;
      const std = Math.sqrt(v / (hw - 1));
      const top = f(f(f(std * 5) + mean) * multiplier);
      for (let p = 0; p < hw; p++) {
        const mag = m[b * hw + p];
        const scaled = f(mag * f(1 / top));
        const nm = f(f(scaled / f(scaled + 1)) * top);
        for (let c = 0; c < C; c++) {
          const i = (b * C + c) * hw + p;
          out[i] = f(latent.data[i] / mag) * nm;
        }
      }
    }
    return { shape: [...latent.shape], data: out };
  };
}

/** Sharpen the per-pixel directions (ComfyUI's sharpen kernel over a reflect padding), magnitudes kept. */
export function sharpenOperation(radius: number, sigma: number, alpha: number): LatentOperation {
  return (latent) => {
    const [B, C, H, W] = latent.shape;
    const hw = H * W;
    const lum = magnitudes(latent, 1e-6);
    const normalized = new Float32Array(latent.data.length);
    for (let b = 0; b < B; b++)
      for (let c = 0; c < C; c++)
        for (let p = 0; p < hw; p++) normalized[(b * C + c) * hw + p] = latent.data[(b * C + c) * hw + p] / lum[b * hw + p];
    const sharp = convolveReflect(
      { shape: latent.shape, data: normalized },
      comfySharpenKernel(2 * radius + 1, sigma, alpha),
      radius,
      false,
    );
    const out = new Float32Array(latent.data.length);
    for (let b = 0; b < B; b++)
      for (let c = 0; c < C; c++)
        for (let p = 0; p < hw; p++) out[(b * C + c) * hw + p] = lum[b * hw + p] * sharp.data[(b * C + c) * hw + p];
    return { shape: [...latent.shape], data: out };
  };
}

export const LatentApplyOperation = defineNode({
  name: 'LatentApplyOperation',
  category: 'latent/advanced/operations',
  experimental: true,
  inputs: { required: { samples: { type: 'LATENT' }, operation: { type: 'LATENT_OPERATION' } } },
  outputs: [{ type: 'LATENT', name: 'LATENT' }],
  run({ samples, operation }) {
    const out: Latent = { ...samples, samples: operation(samples.samples) };
    return [out];
  },
});

export const LatentOperationTonemapReinhard = defineNode({
  name: 'LatentOperationTonemapReinhard',
  category: 'latent/advanced/operations',
  experimental: true,
  inputs: { required: { multiplier: { type: 'FLOAT', default: 1.0, min: 0.0, max: 100.0, step: 0.01 } } },
  outputs: [{ type: 'LATENT_OPERATION', name: 'LATENT_OPERATION' }],
  run({ multiplier }) {
    return [tonemapReinhard(multiplier)];
  },
});

export const LatentOperationSharpen = defineNode({
  name: 'LatentOperationSharpen',
  category: 'latent/advanced/operations',
  experimental: true,
  inputs: {
    required: {
      sharpen_radius: { type: 'INT', default: 9, min: 1, max: 31, step: 1 },
      sigma: { type: 'FLOAT', default: 1.0, min: 0.1, max: 10.0, step: 0.1 },
      alpha: { type: 'FLOAT', default: 0.1, min: 0.0, max: 5.0, step: 0.01 },
    },
  },
  outputs: [{ type: 'LATENT_OPERATION', name: 'LATENT_OPERATION' }],
  run({ sharpen_radius, sigma, alpha }) {
    return [sharpenOperation(sharpen_radius, sigma, alpha)];
  },
});

export const nodes = [LatentApplyOperation, LatentOperationTonemapReinhard, LatentOperationSharpen];
