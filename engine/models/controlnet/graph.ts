import { GraphBuilder } from '../../onnx/graph.ts';
import { Net, type NetOptions } from '../../onnx/nn.ts';
import type { WeightSource } from '../../core/weights.ts';
import { inputAndMiddle, unetEmbedding, UNET_IO } from '../families/sd1/graphs/unet-graph.ts';
import { unetPlan } from '../families/sd1/unet-plan.ts';
import { HINT_CONVS, MIDDLE_OUT_KEY, zeroConvKey, type ControlNetConfig } from './layout.ts';
import { controlAddEmbedding, unionHintMerge } from './union.ts';

/**
 * A ControlNet as two ONNX graphs, both over bare cldm weights. The hint encoder (`input_hint_block`)
 * depends only on the hint image, so it is its own graph, run once per hint and size rather than at
 * every step. The main graph is ComfyUI's `cldm.ControlNet.forward` after the hint: the UNet's
 * embedding, input blocks and middle block (the UNet graph's exported blocks), the encoded hint added
 * after input block 0, and a zero conv on every skip and on the middle block's output.
 */

export const HINT_IO = { hint: 'hint', out: 'hint_features', controlType: 'control_type' } as const;
export const CONTROLNET_IO = { ...UNET_IO, hintFeatures: 'hint_features', outMiddle: 'control_mid', controlType: 'control_type' } as const;
export const controlOutputName = (i: number): string => `control_${i}`;

/**
 * `input_hint_block(hint)`: [B, hintChannels, H, W] → [B, modelChannels, H/8, W/8]. `unionMerge`: a
 * Union ControlNet's hint with a control type set, fused by `union_controlnet_merge` (input
 * `control_type`, the one-hot [numTypes]).
 */
export function buildHintGraph(cfg: ControlNetConfig, ws: WeightSource, opts: NetOptions, unionMerge = false): GraphBuilder {
  const g = new GraphBuilder(unionMerge ? 'weft_controlnet_hint_union' : 'weft_controlnet_hint');
  const n = new Net(g, ws, opts);
  let h = g.input(HINT_IO.hint, 'float32', ['batch', cfg.hintChannels, 'height', 'width']);
  if (n.dtype === 'float16') h = n.cast(h, 'float16');
  HINT_CONVS.forEach((c, i) => {
    h = n.conv(`input_hint_block.${c.index}`, h, { stride: c.stride });
    if (i < HINT_CONVS.length - 1) h = n.silu(h);
  });
  if (unionMerge) {
    if (!cfg.union) throw new Error('the union hint graph is built for a ControlNet Union only');
    const oneHot = g.input(HINT_IO.controlType, 'float32', [cfg.union.numControlTypes]);
    h = unionHintMerge(n, cfg.union, h, n.dtype === 'float16' ? n.cast(oneHot, 'float16') : oneHot);
  }
  if (n.dtype === 'float16') h = n.cast(h, 'float32');
  g.output(h, HINT_IO.out, 'float32', ['batch', cfg.unet.modelChannels, 'hint_height', 'hint_width']);
  return g;
}

/**
 * Inputs: `x` [B, C, h, w] (the UNet's input, already through calculate_input), `timesteps` [B],
 * `context` [B, T, contextDim], `hint_features` [1 or B, modelChannels, h, w] and `y` for a model
 * with a label embedding, `control_type` (the one-hot [numTypes], all zeros for "auto") for a Union
 * ControlNet. Outputs `control_<i>` (one per skip connection, shaped like that skip) and
 * `control_mid`, before strength.
 */
export function buildControlNetGraph(cfg: ControlNetConfig, ws: WeightSource, opts: NetOptions): GraphBuilder {
  const plan = unetPlan(cfg.unet);
  const g = new GraphBuilder('weft_controlnet');
  const n = new Net(g, ws, opts);
  const f16 = n.dtype === 'float16';
  const in32 = (v: string): string => (f16 ? n.cast(v, 'float16') : v);
  const x = in32(g.input(UNET_IO.x, 'float32', ['batch', cfg.unet.inChannels, 'height', 'width']));
  const t = g.input(UNET_IO.timesteps, 'float32', ['batch']);
  const context = in32(g.input(UNET_IO.context, 'float32', ['batch', 'tokens', cfg.unet.contextDim]));
  const hint = in32(g.input(CONTROLNET_IO.hintFeatures, 'float32', ['hint_batch', cfg.unet.modelChannels, 'height', 'width']));
  const y = plan.admInChannels !== undefined ? in32(g.input(UNET_IO.y, 'float32', ['batch', plan.admInChannels])) : undefined;
  const union = cfg.union;
  const timeAdd = union ? controlAddEmbedding(n, union, g.input(CONTROLNET_IO.controlType, 'float32', [union.numControlTypes])) : undefined;
  const emb = unetEmbedding(n, plan, t, y, timeAdd);
  const { skips, middle } = inputAndMiddle(n, plan, x, emb, context, (b, h) => (b.index === 0 ? g.op1('Add', [h, hint]) : h));
  const out = (v: string, name: string): void => g.output(f16 ? n.cast(v, 'float32') : v, name, 'float32', ['batch', `${name}_c`, `${name}_h`, `${name}_w`]);
  skips.forEach((s, i) => out(n.conv(zeroConvKey(i), s), controlOutputName(i)));
  out(n.conv(MIDDLE_OUT_KEY, middle), CONTROLNET_IO.outMiddle);
  return g;
}
