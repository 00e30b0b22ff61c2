import * as ort from 'onnxruntime-node';
import type { Tensor } from '../../core/tensor.ts';
import type { WeightSource } from '../../core/weights.ts';
import { GraphBuilder } from '../../onnx/graph.ts';
import { Net, type NetOptions } from '../../onnx/nn.ts';
import type { PartSpec } from '../runtime/part.ts';
import type { PartsRuntime } from '../runtime/parts-runtime.ts';

/**
 * The VAE's layers between its GroupNorms as small ONNX parts, built from the checkpoint's own
 * weights (the keys the VAE part reads), so the tiled VAE can stop every tile at each GroupNorm:
 * a conv, the decoder's nearest 2× upsample + conv, the encoder's padded stride-2 conv, and an
 * attention block's q/k/v → attention → proj_out (without its norm and residual). Every graph takes
 * `x` [N, C, h, w] of any size and gives `y`.
 */

export type LayerKind = 'conv' | 'up' | 'down' | 'attn';

export interface LayerSource {
  /** Content hash of the VAE's file (names the builds). */
  readonly hash: string;
  /** The VAE's weights under bare LDM keys (`decoder.conv_in.weight`, ...). */
  readonly weights: WeightSource;
  readonly file?: string;
}

function buildLayer(kind: LayerKind, key: string, ws: WeightSource, o: NetOptions): GraphBuilder {
  const g = new GraphBuilder(`weft_tiled_vae_${key.replace(/\W/g, '_')}`);
  const n = new Net(g, ws, o);
  const wKey = kind === 'attn' ? `${key}.q` : key;
  const cin = n.shape(`${wKey}.weight`)[1];
  const x0 = g.input('x', 'float32', ['batch', cin, 'height', 'width']);
  const x = o.dtype === 'float16' ? n.cast(x0, 'float16') : x0;
  let y: string;
  if (kind === 'conv') y = n.conv(key, x);
  else if (kind === 'up') y = n.conv(key, n.upsample2x(x));
  // LDM pads one pixel on the right and bottom only, then a 3×3 stride-2 conv without padding.
  else if (kind === 'down') y = n.conv(key, x, { stride: 2, pads: [0, 0, 1, 1] });
  else {
    const C = n.shape(`${key}.q.weight`)[0];
    const q = n.toTokens(n.conv(`${key}.q`, x), C);
    const k = n.toTokens(n.conv(`${key}.k`, x), C);
    const v = n.toTokens(n.conv(`${key}.v`, x), C);
    y = n.conv(`${key}.proj_out`, n.fromTokens(n.attention(q, k, v, 1, C), x));
  }
  if (o.dtype === 'float16') y = n.cast(y, 'float32');
  g.output(y, 'y', 'float32', ['batch', 'out_channels', 'out_height', 'out_width']);
  return g;
}

/** One layer as a part: its own id per key, so each has its own build. */
export function layerPart(src: LayerSource, kind: LayerKind, key: string): PartSpec {
  return {
    id: `tiled_vae.${key}`,
    hash: src.hash,
    weights: src.weights,
    prefix: 'first_stage_model.',
    source: src.file,
    // Dozens of layer sessions, each run on whole tiles: with ORT's arena each would keep its largest run's buffers.
    activations: 'freed',
    // 1: optimised without ORT's NCHWc layout (see partOptions in sessions.ts); the builds saved before were.
    version: 1,
    build: (ws, o) => buildLayer(kind, key, ws, o),
  };
}

/** Runs layers by (kind, key) through the parts runtime; runners are made once per layer. */
export class LayerRunner {
  private readonly runners = new Map<string, ReturnType<PartsRuntime['runner']>>();

  constructor(
    private readonly runtime: PartsRuntime,
    private readonly src: LayerSource,
  ) {}

  /** The layer over `x`, written into an array from `alloc` (a recycled one: see tile-arrays.ts) by ORT. */
  async run(kind: LayerKind, key: string, x: Tensor, alloc: (length: number) => Float32Array): Promise<Tensor> {
    let r = this.runners.get(key);
    if (!r) {
      r = this.runtime.runner(layerPart(this.src, kind, key));
      this.runners.set(key, r);
    }
    const shape = this.outputShape(kind, key, x.shape);
    const data = alloc(shape.reduce((a, b) => a * b, 1));
    await r({ x: new ort.Tensor('float32', x.data, [...x.shape]) }, { y: new ort.Tensor('float32', data, shape) });
    return { shape, data };
  }

  /** What `buildLayer` gives for an input of `shape`: 3×3 convs padded by one (or 1×1), the LDM downsample's right/bottom pad. */
  private outputShape(kind: LayerKind, key: string, shape: readonly number[]): number[] {
    const [n, c, h, w] = shape;
    if (kind === 'attn') return [n, c, h, w];
    const cout = this.src.weights.shape(`${key}.weight`)[0];
    if (kind === 'up') return [n, cout, 2 * h, 2 * w];
    if (kind === 'down') return [n, cout, Math.floor((h - 2) / 2) + 1, Math.floor((w - 2) / 2) + 1];
    return [n, cout, h, w];
  }
}
