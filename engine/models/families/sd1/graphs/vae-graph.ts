import { GraphBuilder } from '../../../../onnx/graph.ts';
import { Net, type NetOptions } from '../../../../onnx/nn.ts';
import type { VaeConfig } from '../config.ts';
import type { WeightSource } from '../../../../core/weights.ts';

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

/**
 * Nearest 2× upsampling then a 3×3 conv, computed at the low resolution: each output pixel of one
 * parity (row a, column b) sees only a 2×2 window of the input, so four 2×2 convs with summed taps
 * (rows {0},{1,2} for a = 0, {0,1},{2} for a = 1; columns alike) give the four interleaved
 * phases, and DepthToSpace interleaves them. 4/9 of the multiply-adds, and no upsampled tensor.
 * The summed taps round once (in float64), so results match the unfused pair to float rounding.
 */
export function upsampleConv(n: Net, key: string, x: string): string {
  const [cout, cin, kh, kw] = n.shape(`${key}.weight`);
  // A LoRA branch on this conv needs the conv as the checkpoint has it.
  if (kh !== 3 || kw !== 3 || n.hooksTouch(key)) return n.conv(key, n.upsample2x(x));
  const taps = [
    [[0], [1, 2]],
    [[0, 1], [2]],
  ];
  const bias = n.has(`${key}.bias`) ? [n.weight(`${key}.bias`)] : [];
  const phases: string[] = [];
  for (const a of [0, 1]) {
    for (const b of [0, 1]) {
      const phase = (w: Float32Array): Float32Array => {
        const out = new Float32Array(cout * cin * 4);
        for (let oc = 0; oc < cout * cin; oc++) {
          for (let r = 0; r < 2; r++) {
            for (let c = 0; c < 2; c++) {
              let sum = 0;
              for (const p of taps[a][r]) for (const q of taps[b][c]) sum += w[oc * 9 + p * 3 + q];
              out[oc * 4 + r * 2 + c] = sum;
            }
          }
        }
        return out;
      };
      const w = n.weight(`${key}.weight`, [cout, cin, 2, 2], phase, `${key}.weight.phase${a}${b}`);
      // ONNX pads are [top, left, bottom, right]: phase 0 reads the row above, phase 1 the row below.
      phases.push(n.g.op1('Conv', [x, w, ...bias], { kernel_shape: [2, 2], pads: [1 - a, 1 - b, a, b] }));
    }
  }
  return n.g.op1('DepthToSpace', [n.g.op1('Concat', phases, { axis: 1 })], { blocksize: 2, mode: 'DCR' });
}

export interface VaeDecoderLayout {
  /**
   * Upsample+conv as `upsampleConv` (~12% faster decode; outputs differ from the unfused pair by float
   * rounding, a few 1e-6, which moves a handful of 8-bit pixels by one level). Off by default: SD1's
   * decode stays bit-identical to earlier builds and to what was checked against ComfyUI.
   */
  fuseUpsample?: boolean;
}

export function buildVaeDecoderGraph(cfg: VaeConfig, ws: WeightSource, opts: NetOptions, layout: VaeDecoderLayout = {}): GraphBuilder {
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
    const up = `decoder.up.${i}.upsample.conv`;
    if (i > 0) h = layout.fuseUpsample === true ? upsampleConv(n, up, h) : n.conv(up, n.upsample2x(h));
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
