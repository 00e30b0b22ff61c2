import type { Tensor } from '../../../../core/tensor.ts';
import type { WeightSource } from '../../../../core/weights.ts';
import { HINT_CONVS, MIDDLE_OUT_KEY, zeroConvKey, type ControlNetConfig } from '../../../controlnet/layout.ts';
import { add, conv2d, silu } from './layers.ts';
import { unetEncodeRef } from './unet.ts';

/**
 * ComfyUI's `cldm.ControlNet` in plain loops, over bare cldm weights: the oracle for the ControlNet
 * graphs. The UNet's encoder half is `unetEncodeRef` with the encoded hint added after input block 0.
 */

function conv(ws: WeightSource, key: string, x: Tensor, stride = 1): Tensor {
  const shape = ws.shape(`${key}.weight`);
  return conv2d(x, ws.get(`${key}.weight`), shape, ws.get(`${key}.bias`), { stride, pad: Math.floor(shape[2] / 2) }, key);
}

/** `input_hint_block(hint)`. */
export function hintEncodeRef(ws: WeightSource, hint: Tensor): Tensor {
  let h = hint;
  HINT_CONVS.forEach((c, i) => {
    h = conv(ws, `input_hint_block.${c.index}`, h, c.stride);
    if (i < HINT_CONVS.length - 1) h = silu(h);
  });
  return h;
}

/** Rows of `t` repeated to `batch` (a batch-1 tensor broadcast, as torch's add does). */
function repeatRows(t: Tensor, batch: number): Tensor {
  if (t.shape[0] === batch) return t;
  const per = t.data.length / t.shape[0];
  const data = new Float32Array(batch * per);
  for (let b = 0; b < batch; b++) data.set(t.data.subarray((b % t.shape[0]) * per, ((b % t.shape[0]) + 1) * per), b * per);
  return { shape: [batch, ...t.shape.slice(1)], data };
}

/**
 * The ControlNet's residuals before strength: `x` is the UNet input (after calculate_input), `hint`
 * the image at 8× the latent size (batch 1 or x's).
 */
export function controlNetRef(cfg: ControlNetConfig, ws: WeightSource, x: Tensor, timesteps: Float32Array, context: Tensor, hint: Tensor, y?: Tensor): { input: Tensor[]; middle: Tensor } {
  const guided = repeatRows(hintEncodeRef(ws, hint), x.shape[0]);
  const { skips, middle } = unetEncodeRef(cfg.unet, ws, x, timesteps, context, { y, afterInputBlock: (i, h) => (i === 0 ? add(h, guided, 'hint') : h) });
  return { input: skips.map((s, i) => conv(ws, zeroConvKey(i), s)), middle: conv(ws, MIDDLE_OUT_KEY, middle) };
}
