import { GraphBuilder } from '../../onnx/graph.ts';
import { Net, type NetOptions } from '../../onnx/nn.ts';
import type { UNetConfig } from '../config.ts';
import { timestepFrequencies } from '../timestep.ts';
import type { WeightSource } from '../../core/weights.ts';

/**
 * The SD1 UNet (LDM `UNetModel`, eps prediction) as an ONNX graph, structured exactly as the
 * reference in `../reference/unet.ts`. Inputs: `x` [B, C, H, W], `timesteps` [B] (float, fractional
 * allowed), `context` [B, T, contextDim]; output `out` like x.
 *
 * ControlNet/T2I residuals are graph inputs `control_in_<i>` (one per skip connection) and
 * `control_mid`, added where ComfyUI adds a ControlNet's. They broadcast, so a run without a
 * ControlNet feeds a [1, 1, 1, 1] zero (see `OrtUnet`), and a ControlNet later feeds real residuals
 * into the same session: no second UNet. (ONNX's overridable initializers would make them optional,
 * but onnxruntime-node does not let a run feed them.)
 */

export const UNET_IO = { x: 'x', timesteps: 'timesteps', context: 'context', out: 'out', controlMid: 'control_mid' } as const;
export const controlInputName = (i: number): string => `control_in_${i}`;

/** Number of skip connections, i.e. of `control_in_<i>` inputs (12 for SD1). */
export function unetSkipCount(cfg: UNetConfig): number {
  return 1 + cfg.channelMult.length * cfg.numResBlocks + (cfg.channelMult.length - 1);
}

/** `ws` holds bare UNet keys (`input_blocks.0.0.weight`, ...). */
export function buildUnetGraph(cfg: UNetConfig, ws: WeightSource, opts: NetOptions): GraphBuilder {
  const g = new GraphBuilder('weft_sd1_unet');
  const n = new Net(g, ws, opts);
  const dt = opts.dtype;
  let x = g.input(UNET_IO.x, 'float32', ['batch', cfg.inChannels, 'height', 'width']);
  const t = g.input(UNET_IO.timesteps, 'float32', ['batch']);
  let context = g.input(UNET_IO.context, 'float32', ['batch', 'tokens', cfg.contextDim]);
  if (dt === 'float16') {
    x = n.cast(x, 'float16');
    context = n.cast(context, 'float16');
  }

  // Timestep embedding in float32 (cos/sin of arguments up to 1000 need the mantissa), as ComfyUI.
  const C = cfg.modelChannels;
  const freqs = timestepFrequencies(C);
  const f = g.floats('timestep_freqs', [1, freqs.length], () => freqs);
  const arg = g.op1('Mul', [g.op1('Unsqueeze', [t, g.ints([1])]), f]);
  let emb = g.op1('Concat', [g.op1('Cos', [arg]), g.op1('Sin', [arg])], { axis: 1 });
  if (dt === 'float16') emb = n.cast(emb, 'float16');
  emb = n.linear('time_embed.2', n.silu(n.linear('time_embed.0', emb)));
  const embAct = n.silu(emb);

  const resBlock = (key: string, h: string): string => {
    let y = n.conv(`${key}.in_layers.2`, n.silu(n.groupNorm(`${key}.in_layers.0`, h, cfg.normGroups, 1e-5)));
    const e = g.op1('Unsqueeze', [n.linear(`${key}.emb_layers.1`, embAct), g.ints([2, 3])]);
    y = g.op1('Add', [y, e]);
    y = n.conv(`${key}.out_layers.3`, n.silu(n.groupNorm(`${key}.out_layers.0`, y, cfg.normGroups, 1e-5)));
    const skip = n.has(`${key}.skip_connection.weight`) ? n.conv(`${key}.skip_connection`, h) : h;
    return g.op1('Add', [skip, y]);
  };

  const spatialTransformer = (key: string, h: string): string => {
    const ch = n.shape(`${key}.norm.weight`)[0];
    const normed = n.groupNorm(`${key}.norm`, h, cfg.normGroups, 1e-6);
    let tok = cfg.useLinearInProj ? n.linear(`${key}.proj_in`, n.toTokens(normed, ch)) : n.toTokens(n.conv(`${key}.proj_in`, normed), ch);
    for (let d = 0; n.has(`${key}.transformer_blocks.${d}.attn1.to_q.weight`); d++) {
      const b = `${key}.transformer_blocks.${d}`;
      const n1 = n.layerNorm(`${b}.norm1`, tok, 1e-5);
      tok = g.op1('Add', [tok, attn(`${b}.attn1`, n1, n1, ch)]);
      const n2 = n.layerNorm(`${b}.norm2`, tok, 1e-5);
      tok = g.op1('Add', [tok, attn(`${b}.attn2`, n2, context, ch)]);
      const n3 = n.layerNorm(`${b}.norm3`, tok, 1e-5);
      const proj = n.linear(`${b}.ff.net.0.proj`, n3);
      const inner = n.shape(`${b}.ff.net.0.proj.weight`)[0] / 2;
      const [a, gate] = g.op('Split', [proj, g.ints([inner, inner])], { axis: -1 }, 2);
      tok = g.op1('Add', [tok, n.linear(`${b}.ff.net.2`, g.op1('Mul', [a, n.gelu(gate)]))]);
    }
    const out = cfg.useLinearInProj ? n.fromTokens(n.linear(`${key}.proj_out`, tok), h) : n.conv(`${key}.proj_out`, n.fromTokens(tok, h));
    return g.op1('Add', [h, out]);
  };

  const attn = (key: string, q: string, kv: string, width: number): string =>
    n.linear(`${key}.to_out.0`, n.attention(n.linear(`${key}.to_q`, q), n.linear(`${key}.to_k`, kv), n.linear(`${key}.to_v`, kv), cfg.numHeads, width));

  const control = (name: string): string => {
    const v = g.input(name, 'float32', [`${name}_b`, `${name}_c`, `${name}_h`, `${name}_w`]);
    return dt === 'float16' ? n.cast(v, 'float16') : v;
  };

  const skips: string[] = [];
  let h = n.conv('input_blocks.0.0', x);
  skips.push(h);
  let idx = 1;
  cfg.channelMult.forEach((_m, level) => {
    for (let r = 0; r < cfg.numResBlocks; r++) {
      h = resBlock(`input_blocks.${idx}.0`, h);
      if (n.has(`input_blocks.${idx}.1.norm.weight`)) h = spatialTransformer(`input_blocks.${idx}.1`, h);
      skips.push(h);
      idx++;
    }
    if (level < cfg.channelMult.length - 1) {
      h = n.conv(`input_blocks.${idx}.0.op`, h, { stride: 2 });
      skips.push(h);
      idx++;
    }
  });

  h = resBlock('middle_block.0', h);
  h = spatialTransformer('middle_block.1', h);
  h = resBlock('middle_block.2', h);
  h = g.op1('Add', [h, control(UNET_IO.controlMid)]);

  const nOut = cfg.channelMult.length * (cfg.numResBlocks + 1);
  for (let o = 0; o < nOut; o++) {
    const i = skips.length - 1;
    const skip = g.op1('Add', [skips.pop()!, control(controlInputName(i))]);
    h = resBlock(`output_blocks.${o}.0`, g.op1('Concat', [h, skip], { axis: 1 }));
    let sub = 1;
    if (n.has(`output_blocks.${o}.1.norm.weight`)) h = spatialTransformer(`output_blocks.${o}.${sub++}`, h);
    if (n.has(`output_blocks.${o}.${sub}.conv.weight`)) {
      // Upsample to the next skip's size (not a blind 2×) so odd latent sizes line up, as ComfyUI.
      h = n.conv(`output_blocks.${o}.${sub}.conv`, n.resizeNearestLike(h, skips[skips.length - 1]));
    }
  }
  let out = n.conv('out.2', n.silu(n.groupNorm('out.0', h, cfg.normGroups, 1e-5)));
  if (dt === 'float16') out = n.cast(out, 'float32');
  g.output(out, UNET_IO.out, 'float32', ['batch', cfg.outChannels, 'height', 'width']);
  return g;
}
