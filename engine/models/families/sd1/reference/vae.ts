import type { Tensor } from '../../../../core/tensor.ts';
import { SD1_PREFIX } from '../config.ts';
import type { VaeConfig } from '../config.ts';
import type { WeightSource } from '../../../../core/weights.ts';
import { add, attention, conv2d, fromTokens, groupNorm, resizeNearest, silu, toTokens } from './layers.ts';

/**
 * The SD VAE (LDM `AutoencoderKL`, ComfyUI's `diffusionmodules/model.py`) in plain loops: the oracle
 * for the encoder and decoder graphs. All norms are GroupNorm(32, eps 1e-6); the encoder returns the
 * posterior mean (ComfyUI's DiagonalGaussianRegularizer takes the mode at inference).
 *
 * Both functions work in the model's own range: images NCHW in −1..1, latents raw (unscaled).
 */

/** VAE weights are read under `first_stage_model.` when present (checkpoints), else bare (VAE files). */
export function vaePrefix(ws: WeightSource): string {
  return ws.has(`${SD1_PREFIX.vae}decoder.conv_in.weight`) || ws.has(`${SD1_PREFIX.vae}encoder.conv_in.weight`) ? SD1_PREFIX.vae : '';
}

const EPS = 1e-6;

class Net {
  constructor(
    private readonly ws: WeightSource,
    private readonly prefix: string,
    private readonly groups: number,
  ) {}
  has(name: string): boolean {
    return this.ws.has(this.prefix + name);
  }
  conv(key: string, x: Tensor, opts: { stride?: number; pad?: number | [number, number, number, number] } = {}): Tensor {
    const shape = this.ws.shape(`${this.prefix}${key}.weight`);
    const pad = opts.pad ?? Math.floor(shape[2] / 2);
    return conv2d(x, this.ws.get(`${this.prefix}${key}.weight`), shape, this.ws.get(`${this.prefix}${key}.bias`), { stride: opts.stride ?? 1, pad }, key);
  }
  norm(key: string, x: Tensor): Tensor {
    return groupNorm(x, this.groups, this.ws.get(`${this.prefix}${key}.weight`), this.ws.get(`${this.prefix}${key}.bias`), EPS, key);
  }
  resnet(key: string, x: Tensor): Tensor {
    let h = this.conv(`${key}.conv1`, silu(this.norm(`${key}.norm1`, x)));
    h = this.conv(`${key}.conv2`, silu(this.norm(`${key}.norm2`, h)));
    const skip = this.has(`${key}.nin_shortcut.weight`) ? this.conv(`${key}.nin_shortcut`, x) : x;
    return add(skip, h, key);
  }
  /** Single-head self-attention over all pixels with 1×1-conv projections. */
  attn(key: string, x: Tensor): Tensor {
    const [, , H, W] = x.shape;
    const h = this.norm(`${key}.norm`, x);
    const q = toTokens(this.conv(`${key}.q`, h));
    const k = toTokens(this.conv(`${key}.k`, h));
    const v = toTokens(this.conv(`${key}.v`, h));
    const o = this.conv(`${key}.proj_out`, fromTokens(attention(q, k, v, 1, key), H, W));
    return add(x, o, key);
  }
  mid(key: string, x: Tensor): Tensor {
    return this.resnet(`${key}.block_2`, this.attn(`${key}.attn_1`, this.resnet(`${key}.block_1`, x)));
  }
}

/** Image [B, 3, H, W] in −1..1 → latent mean [B, embedDim, H/8, W/8] (raw, unscaled). */
export function vaeEncodeRef(cfg: VaeConfig, ws: WeightSource, image: Tensor): Tensor {
  const net = new Net(ws, vaePrefix(ws), cfg.normGroups);
  let h = net.conv('encoder.conv_in', image);
  for (let i = 0; i < cfg.chMult.length; i++) {
    for (let j = 0; j < cfg.numResBlocks; j++) h = net.resnet(`encoder.down.${i}.block.${j}`, h);
    // LDM pads right/bottom by one, then convolves 3×3 with stride 2 and no padding.
    if (i < cfg.chMult.length - 1) h = net.conv(`encoder.down.${i}.downsample.conv`, h, { stride: 2, pad: [0, 0, 1, 1] });
  }
  h = net.mid('encoder.mid', h);
  h = net.conv('encoder.conv_out', silu(net.norm('encoder.norm_out', h)));
  const moments = net.conv('quant_conv', h);
  const [B, , LH, LW] = moments.shape;
  const S = LH * LW;
  const mean = new Float32Array(B * cfg.embedDim * S);
  for (let b = 0; b < B; b++) mean.set(moments.data.subarray(b * 2 * cfg.embedDim * S, (b * 2 + 1) * cfg.embedDim * S), b * cfg.embedDim * S);
  return { shape: [B, cfg.embedDim, LH, LW], data: mean };
}

/** Latent [B, embedDim, h, w] (raw) → image [B, 3, 8h, 8w] in the model's −1..1 range (unclamped). */
export function vaeDecodeRef(cfg: VaeConfig, ws: WeightSource, latent: Tensor): Tensor {
  const net = new Net(ws, vaePrefix(ws), cfg.normGroups);
  let h = net.conv('post_quant_conv', latent);
  h = net.conv('decoder.conv_in', h);
  h = net.mid('decoder.mid', h);
  for (let i = cfg.chMult.length - 1; i >= 0; i--) {
    for (let j = 0; j <= cfg.numResBlocks; j++) h = net.resnet(`decoder.up.${i}.block.${j}`, h);
    if (i > 0) h = net.conv(`decoder.up.${i}.upsample.conv`, resizeNearest(h, h.shape[2] * 2, h.shape[3] * 2));
  }
  return net.conv('decoder.conv_out', silu(net.norm('decoder.norm_out', h)));
}
