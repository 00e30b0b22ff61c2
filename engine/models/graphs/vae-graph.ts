import { GraphBuilder } from '../../onnx/graph.ts';
import { Net, type NetOptions } from '../../onnx/nn.ts';
import type { VaeConfig } from '../config.ts';
import type { WeightSource } from '../../core/weights.ts';

/**
 * The SD VAE (LDM AutoencoderKL) encoder and decoder as ONNX graphs, matching
 * `../reference/vae.ts`. Both work in the model's own range: `image` NCHW in −1..1, `latent` raw.
 * The encoder returns the posterior mean, as ComfyUI does at inference. `ws` holds bare VAE keys.
 */

export const VAE_IO = { image: 'image', latent: 'latent' } as const;
const EPS = 1e-6;

function blocks(n: Net, cfg: VaeConfig) {
  const g = n.g;
  const norm = (key: string, x: string): string => n.groupNorm(key, x, cfg.normGroups, EPS);
  const resnet = (key: string, x: string): string => {
    let h = n.conv(`${key}.conv1`, n.silu(norm(`${key}.norm1`, x)));
    h = n.conv(`${key}.conv2`, n.silu(norm(`${key}.norm2`, h)));
    const skip = n.has(`${key}.nin_shortcut.weight`) ? n.conv(`${key}.nin_shortcut`, x) : x;
    return g.op1('Add', [skip, h]);
  };
  const attn = (key: string, x: string): string => {
    const C = n.shape(`${key}.q.weight`)[0];
    const h = norm(`${key}.norm`, x);
    const q = n.toTokens(n.conv(`${key}.q`, h), C);
    const k = n.toTokens(n.conv(`${key}.k`, h), C);
    const v = n.toTokens(n.conv(`${key}.v`, h), C);
    const o = n.conv(`${key}.proj_out`, n.fromTokens(n.attention(q, k, v, 1, C), x));
    return g.op1('Add', [x, o]);
  };
  const mid = (key: string, x: string): string => resnet(`${key}.block_2`, attn(`${key}.attn_1`, resnet(`${key}.block_1`, x)));
  return { norm, resnet, mid };
}

export function buildVaeDecoderGraph(cfg: VaeConfig, ws: WeightSource, opts: NetOptions): GraphBuilder {
  const g = new GraphBuilder('weft_sd_vae_decoder');
  const n = new Net(g, ws, opts);
  const { norm, resnet, mid } = blocks(n, cfg);
  let h = g.input(VAE_IO.latent, 'float32', ['batch', cfg.embedDim, 'height', 'width']);
  if (opts.dtype === 'float16') h = n.cast(h, 'float16');
  h = n.conv('post_quant_conv', h);
  h = n.conv('decoder.conv_in', h);
  h = mid('decoder.mid', h);
  for (let i = cfg.chMult.length - 1; i >= 0; i--) {
    for (let j = 0; j <= cfg.numResBlocks; j++) h = resnet(`decoder.up.${i}.block.${j}`, h);
    if (i > 0) h = n.conv(`decoder.up.${i}.upsample.conv`, n.upsample2x(h));
  }
  h = n.conv('decoder.conv_out', n.silu(norm('decoder.norm_out', h)));
  if (opts.dtype === 'float16') h = n.cast(h, 'float32');
  g.output(h, VAE_IO.image, 'float32', ['batch', cfg.outChannels, 'out_height', 'out_width']);
  return g;
}

export function buildVaeEncoderGraph(cfg: VaeConfig, ws: WeightSource, opts: NetOptions): GraphBuilder {
  const g = new GraphBuilder('weft_sd_vae_encoder');
  const n = new Net(g, ws, opts);
  const { norm, resnet, mid } = blocks(n, cfg);
  let h = g.input(VAE_IO.image, 'float32', ['batch', cfg.inChannels, 'height', 'width']);
  if (opts.dtype === 'float16') h = n.cast(h, 'float16');
  h = n.conv('encoder.conv_in', h);
  for (let i = 0; i < cfg.chMult.length; i++) {
    for (let j = 0; j < cfg.numResBlocks; j++) h = resnet(`encoder.down.${i}.block.${j}`, h);
    // LDM pads one pixel on the right and bottom only, then a 3×3 stride-2 conv without padding.
    if (i < cfg.chMult.length - 1) h = n.conv(`encoder.down.${i}.downsample.conv`, h, { stride: 2, pads: [0, 0, 1, 1] });
  }
  h = mid('encoder.mid', h);
  h = n.conv('encoder.conv_out', n.silu(norm('encoder.norm_out', h)));
  const moments = n.conv('quant_conv', h);
  let mean = g.op1('Slice', [moments, g.ints([0]), g.ints([cfg.embedDim]), g.ints([1])]);
  if (opts.dtype === 'float16') mean = n.cast(mean, 'float32');
  g.output(mean, VAE_IO.latent, 'float32', ['batch', cfg.embedDim, 'latent_height', 'latent_width']);
  return g;
}
