import type { WeightSource } from '../../core/weights.ts';
import { GraphBuilder } from '../../onnx/graph.ts';
import { Net, type NetOptions } from '../../onnx/nn.ts';
import type { CompactArch, EsrganArch, UpscaleArch } from './detect.ts';

/**
 * Upscalers as ONNX graphs over their state-dict names (ESRGAN always under the old `model.N`
 * names): input `image` [B, inNc, H, W] (already pixel-unshuffled for x2plus-style models, which the
 * handle does with the reflect padding), output `upscaled` [B, outNc, H·s, W·s], both float32.
 */

export const UPSCALE_IO = { input: 'image', output: 'upscaled' } as const;

function rrdbNet(n: Net, a: EsrganArch, x: string): string {
  const g = n.g;
  const lrelu = (v: string): string => g.op1('LeakyRelu', [v], { alpha: 0.2 });
  const scaled = (v: string): string => g.op1('Mul', [v, n.scalar(0.2)]);
  const rdb = (key: string, v: string): string => {
    const feats = [v];
    for (let c = 1; c <= 4; c++) feats.push(lrelu(n.conv(`${key}.conv${c}.0`, feats.length === 1 ? v : g.op1('Concat', feats, { axis: 1 }))));
    const x5 = n.conv(`${key}.conv5.0`, g.op1('Concat', feats, { axis: 1 }));
    return g.op1('Add', [scaled(x5), v]);
  };
  const fea = n.conv('model.0', x);
  let t = fea;
  for (let b = 0; b < a.nb; b++) {
    const key = `model.1.sub.${b}`;
    const out = rdb(`${key}.RDB3`, rdb(`${key}.RDB2`, rdb(`${key}.RDB1`, t)));
    t = g.op1('Add', [scaled(out), t]);
  }
  let h = g.op1('Add', [fea, n.conv(`model.1.sub.${a.nb}`, t)]);
  for (let u = 1; u <= a.upsamples; u++) h = lrelu(n.conv(`model.${3 * u}`, n.upsample2x(h)));
  h = lrelu(n.conv(`model.${3 * a.upsamples + 2}`, h));
  return n.conv(`model.${3 * a.upsamples + 4}`, h);
}

function compactNet(n: Net, a: CompactArch, x: string): string {
  const g = n.g;
  const prelu = (key: string, v: string): string => g.op1('PRelu', [v, n.weight(key, [a.nf, 1, 1])]);
  let h = prelu('body.1.weight', n.conv('body.0', x));
  for (let k = 0; k < a.numConv; k++) h = prelu(`body.${2 * k + 3}.weight`, n.conv(`body.${2 * k + 2}`, h));
  h = n.conv(`body.${2 * a.numConv + 2}`, h);
  const shuffled = a.scale === 1 ? h : g.op1('DepthToSpace', [h], { blocksize: a.scale, mode: 'CRD' });
  if (a.scale === 1) return g.op1('Add', [shuffled, x]);
  const scales = g.floats(g.fresh('compact_scales'), [4], () => new Float32Array([1, 1, a.scale, a.scale]));
  const base = g.op1('Resize', [x, '', scales], { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' });
  return g.op1('Add', [shuffled, base]);
}

export function buildUpscaleGraph(a: UpscaleArch, ws: WeightSource, opts: NetOptions): GraphBuilder {
  const g = new GraphBuilder(a.kind === 'esrgan' ? 'weft_esrgan' : 'weft_srvgg_compact');
  const n = new Net(g, ws, opts);
  const f16 = n.dtype === 'float16';
  let x = g.input(UPSCALE_IO.input, 'float32', ['batch', a.inNc, 'height', 'width']);
  if (f16) x = n.cast(x, 'float16');
  let y = a.kind === 'esrgan' ? rrdbNet(n, a, x) : compactNet(n, a, x);
  if (f16) y = n.cast(y, 'float32');
  g.output(y, UPSCALE_IO.output, 'float32', ['batch', a.outNc, 'out_height', 'out_width']);
  return g;
}
