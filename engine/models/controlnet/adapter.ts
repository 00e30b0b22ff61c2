import * as ort from 'onnxruntime-node';
import { InterruptedError } from '../../core/errors.ts';
import type { Tensor } from '../../core/tensor.ts';
import type { WeightSource } from '../../core/weights.ts';
import { RenamedWeightSource } from '../families/sd1/weight-views.ts';
import type { PartSpec } from '../runtime/part.ts';
import type { PartsRuntime } from '../runtime/parts-runtime.ts';
import { ADAPTER_IO, adapterOutputName, buildAdapterGraph } from './adapter-graph.ts';
import { adapterImageChannels, adapterUnshuffle, adapterKeyMap, readAdapterConfig, verifyAdapter, type T2IAdapterConfig } from './adapter-layout.ts';

/**
 * A loaded T2I-Adapter (a CONTROL_NET value, like a ControlNet): one part, `t2i_adapter`, built,
 * cached and pooled by the parts runtime. The adapter depends only on the hint, so it runs once per
 * hint and latent size (`T2IAdapterControl`), never per step.
 */

export interface T2IAdapterFile {
  readonly file: string;
  readonly layout: 'comfy' | 'diffusers';
  readonly config: T2IAdapterConfig;
  /** Weights under ComfyUI's names (`conv_in.weight`, `body.3.block1.weight`, ...). */
  readonly weights: WeightSource;
}

export interface T2IAdapterModel {
  readonly kind: 't2i-adapter';
  /** `t2i-adapter:<hash>` */
  readonly id: string;
  readonly file: string;
  readonly config: T2IAdapterConfig;
  /** The features (before strength), one per level, for a hint [B, imageChannels, H, W] (H, W multiples of the unshuffle, 8 or 16). */
  encode(hint: Tensor, signal?: AbortSignal): Promise<Tensor[]>;
  /** Adapter runs so far. */
  readonly runs: { adapter: number };
}

/** Reads an adapter's layout and structure from named tensors (ComfyUI's load_t2i_adapter). */
export function t2iAdapterFromSource(file: string, src: WeightSource): T2IAdapterFile {
  const names = src.names();
  const map = adapterKeyMap(names);
  const diffusers = [...map].some(([a, b]) => a !== b);
  const weights = diffusers ? new RenamedWeightSource(src, new Map([...map].map(([d, c]) => [c, { source: d, shape: src.shape(d) }] as const))) : src;
  const config = readAdapterConfig(weights, file);
  verifyAdapter(weights, config, file);
  return { file, layout: diffusers ? 'diffusers' : 'comfy', config, weights };
}

/** torch.nn.PixelUnshuffle(r) on [B, C, H, W]: channel c·r² + i·r + j holds pixel (y·r + i, x·r + j). */
export function pixelUnshuffle(t: Tensor, r: number): Tensor {
  const [B, C, H, W] = t.shape;
  if (H % r || W % r) throw new Error(`T2I-Adapter hint of ${W}×${H} is not a multiple of ${r}`);
  const h = H / r;
  const w = W / r;
  const out = new Float32Array(t.data.length);
  let o = 0;
  for (let bc = 0; bc < B * C; bc++) {
    const base = bc * H * W;
    for (let i = 0; i < r; i++)
      for (let j = 0; j < r; j++)
        for (let y = 0; y < h; y++) {
          const row = base + (y * r + i) * W + j;
          for (let x = 0; x < w; x++) out[o++] = t.data[row + x * r];
        }
  }
  return { shape: [B, C * r * r, h, w], data: out };
}

export function t2iAdapterPart(a: T2IAdapterFile, hash: string): PartSpec {
  return { id: 't2i_adapter', hash, source: a.file, prefix: '', weights: a.weights, build: (w, o) => buildAdapterGraph(a.config, w, o) };
}

export function t2iAdapterModel(runtime: PartsRuntime, a: T2IAdapterFile, hash: string): T2IAdapterModel {
  const run = runtime.runner(t2iAdapterPart(a, hash));
  const cfg = a.config;
  const runs = { adapter: 0 };
  return {
    kind: 't2i-adapter',
    id: `t2i-adapter:${hash}`,
    file: a.file,
    config: cfg,
    runs,
    async encode(hint, signal) {
      if (signal?.aborted) throw new InterruptedError();
      if (hint.shape.length !== 4 || hint.shape[1] !== adapterImageChannels(cfg)) {
        throw new Error(`T2I-Adapter hint must be [B, ${adapterImageChannels(cfg)}, H, W], got [${hint.shape.join(', ')}]`);
      }
      const x = pixelUnshuffle(hint, adapterUnshuffle(cfg));
      runs.adapter++;
      const out = await run({ [ADAPTER_IO.hint]: new ort.Tensor('float32', x.data, [...x.shape]) });
      return cfg.channels.map((_c, i) => {
        const v = out[adapterOutputName(i)];
        if (!v || !(v.data instanceof Float32Array)) throw new Error(`T2I-Adapter session returned no float32 ${adapterOutputName(i)}`);
        return { shape: [...v.dims], data: v.data };
      });
    },
  };
}
