import type { WeightSource } from '../../core/weights.ts';
import { GraphBuilder } from '../../onnx/graph.ts';
import { Net, type NetOptions } from '../../onnx/nn.ts';
import { adapterLevelDown, type T2IAdapterConfig } from './adapter-layout.ts';

/**
 * A T2I-Adapter (ComfyUI's `Adapter` / `Adapter_light`) as an ONNX graph over ComfyUI-named weights.
 * Its input is the hint after the pixel unshuffle (8×, SDXL's 16×) (done by the caller: the adapter runs once per
 * hint, so there is nothing to gain in the graph), [B, cin, H/r, W/r]; its outputs `adapter_<level>`
 * are the features before strength, one per level.
 */

export const ADAPTER_IO = { hint: 'hint' } as const;
export const adapterOutputName = (level: number): string => `adapter_${level}`;

/**
 * The adapter's `Downsample(use_conv=False)`: a 2×2 average pool whose padding is the input's H % 2 and
 * W % 2 on both sides, zeros counted (torch's AvgPool2d defaults), so odd sizes round up as the UNet's
 * stride-2 convs do. The padding depends on the run's size, hence the Pad computed from the shape.
 */
function avgPoolDown(g: GraphBuilder, x: string): string {
  const hw = g.op1('Slice', [g.op1('Shape', [x]), g.ints([2]), g.ints([4])]);
  const odd = g.op1('Mod', [hw, g.ints([2, 2])]);
  const pads = g.op1('Concat', [g.ints([0, 0]), odd, g.ints([0, 0]), odd], { axis: 0 });
  return g.op1('AveragePool', [g.op1('Pad', [x, pads], { mode: 'constant' })], { kernel_shape: [2, 2], strides: [2, 2] });
}

export function buildAdapterGraph(cfg: T2IAdapterConfig, ws: WeightSource, opts: NetOptions): GraphBuilder {
  const g = new GraphBuilder('weft_t2i_adapter');
  const n = new Net(g, ws, opts);
  const f16 = n.dtype === 'float16';
  let x = g.input(ADAPTER_IO.hint, 'float32', ['batch', cfg.cin, 'height', 'width']);
  if (f16) x = n.cast(x, 'float16');
  const relu = (v: string): string => g.op1('Relu', [v]);
  const out = (v: string, level: number): void => {
    const name = adapterOutputName(level);
    g.output(f16 ? n.cast(v, 'float32') : v, name, 'float32', ['batch', cfg.channels[level], `${name}_h`, `${name}_w`]);
  };
  if (cfg.kind === 'light') {
    cfg.channels.forEach((_c, i) => {
      const key = `body.${i}`;
      if (i > 0) x = avgPoolDown(g, x);
      x = n.conv(`${key}.in_conv`, x);
      for (let k = 0; k < cfg.numsRb; k++) {
        const b = `${key}.body.${k}`;
        x = g.op1('Add', [n.conv(`${b}.block2`, relu(n.conv(`${b}.block1`, x))), x]);
      }
      x = n.conv(`${key}.out_conv`, x);
      out(x, i);
    });
    return g;
  }
  x = n.conv('conv_in', x);
  cfg.channels.forEach((_c, i) => {
    for (let j = 0; j < cfg.numsRb; j++) {
      const key = `body.${i * cfg.numsRb + j}`;
      if (j === 0 && adapterLevelDown(cfg, i)) x = cfg.useConv ? n.conv(`${key}.down_opt.op`, x, { stride: 2 }) : avgPoolDown(g, x);
      if (n.has(`${key}.in_conv.weight`)) x = n.conv(`${key}.in_conv`, x);
      x = g.op1('Add', [n.conv(`${key}.block2`, relu(n.conv(`${key}.block1`, x))), x]);
    }
    out(x, i);
  });
  return g;
}
