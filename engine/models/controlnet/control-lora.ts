import { createHash } from 'node:crypto';
import type { Tensor } from '../../core/tensor.ts';
import type { WeightSource } from '../../core/weights.ts';
import type { ModelHandle } from '../handles.ts';
import type { PartsRuntime } from '../runtime/parts-runtime.ts';
import { controlNetLayout, type ControlNetConfig } from './layout.ts';
import type { ControlNetFile } from './load.ts';
import { applies, type ControlLoraFile } from './control-lora-file.ts';
import { controlNetModel, type ControlNetModel } from './model.ts';

/**
 * Stability's Control-LoRAs (control-lora-*-rank*.safetensors, told by a `lora_controlnet` tensor), as
 * ComfyUI's `ControlLora` (comfy/controlnet.py) builds them at pre_run: a ControlNet of the sampled
 * model's UNet structure whose weights are the model's (patched) UNet weights, replaced by the
 * file's `.weight`/`.bias` tensors where it has them (the hint encoder, zero convs, norms, biases),
 * and for every layer with `.up`/`.down` the weight plus `up.flatten(1) @ down.flatten(1)` reshaped
 * (ControlLoraOps, in float32 as the model's dtype is here). Names with `__` are skipped, as ComfyUI
 * skips them.
 *
 * The structure is read from the file's shapes (a LoRA'd layer's weight shape is [up rows, down's
 * other dims]), so the loader knows it without a model; a model whose UNet differs is refused when
 * the ControlNet is built. The hint encoder is all in the file, so it runs without the model.
 */

/** up.flatten(1) @ down.flatten(1): [out, rank] × [rank, rest] → [out · rest], accumulated in float64 and rounded once. */
function loraDelta(up: Float32Array, down: Float32Array, out: number, rank: number): Float32Array {
  const rest = down.length / rank;
  const d = new Float32Array(out * rest);
  const acc = new Float64Array(rest);
  for (let o = 0; o < out; o++) {
    acc.fill(0);
    for (let r = 0; r < rank; r++) {
      const u = up[o * rank + r];
      if (u === 0) continue;
      for (let j = 0; j < rest; j++) acc[j] += u * down[r * rest + j];
    }
    for (let j = 0; j < rest; j++) d[o * rest + j] = acc[j];
  }
  return d;
}

/** The ControlNet's weights: the file's where it has them, else the model's UNet weight; LoRA'd layers get their delta added in float32. */
class ControlLoraWeights implements WeightSource {
  constructor(
    private readonly lora: ControlLoraFile,
    private readonly layout: ReadonlyMap<string, readonly number[]>,
    private readonly unet: (name: string) => Float32Array,
  ) {}
  has(name: string): boolean {
    return this.layout.has(name);
  }
  names(): string[] {
    return [...this.layout.keys()];
  }
  shape(name: string): readonly number[] {
    const s = this.layout.get(name);
    if (!s) throw new Error(`${this.lora.file}: no ${name} in its ControlNet`);
    return s;
  }
  get(name: string): Float32Array {
    const f = this.lora.weights;
    const base = f.has(name) && applies(name) ? f.get(name) : this.unet(name);
    const mod = name.endsWith('.weight') ? name.slice(0, -'.weight'.length) : undefined;
    if (!mod || !f.has(`${mod}.up`)) return base;
    const up = f.get(`${mod}.up`);
    const upShape = f.shape(`${mod}.up`);
    const delta = loraDelta(up, f.get(`${mod}.down`), upShape[0], upShape[1]);
    if (delta.length !== base.length) throw new Error(`${this.lora.file}: ${mod}.up × ${mod}.down gives ${delta.length} values, the weight has ${base.length}`);
    const out = new Float32Array(base.length);
    for (let i = 0; i < out.length; i++) out[i] = base[i] + delta[i];
    return out;
  }
}

/**
 * The ControlNet a Control-LoRA makes with `model`: every tensor its layout needs from the file or the
 * model's UNet (patched, as ComfyUI reads `diffusion_model.state_dict()` after the patches are on).
 */
export async function controlLoraNet(lora: ControlLoraFile, model: ModelHandle): Promise<ControlNetFile> {
  const p = model.patching;
  if (!p) throw new Error(`${lora.file} is a Control-LoRA, which takes the model's own UNet weights, but this model does not expose them (an ONNX export?)`);
  const layout = controlNetLayout(lora.config);
  const fromModel: string[] = [];
  for (const [name, shape] of layout) {
    if (lora.weights.has(name) && applies(name)) continue;
    const key = p.prefix + name;
    if (!p.weights.has(key)) throw new Error(`${lora.file}: ${name} is neither in the Control-LoRA nor in the model's UNet (${key})`);
    const got = p.weights.shape(key);
    if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
      throw new Error(`${lora.file}: the model's ${key} has shape [${got.join(', ')}], the Control-LoRA needs [${shape.join(', ')}]: it was made for another model`);
    }
    fromModel.push(name);
  }
  let unet: (name: string) => Float32Array;
  if (p.patches.size === 0) unet = (name) => p.weights.get(p.prefix + name);
  else {
    // Patched values are computed asynchronously; the ControlNet's share of them is read now.
    const values = new Map<string, Float32Array>();
    for (const name of fromModel) values.set(name, await p.read(p.prefix + name));
    unet = (name) => {
      const v = values.get(name);
      if (!v) throw new Error(`${lora.file}: no model weight ${name}`);
      return v;
    };
  }
  return {
    file: lora.file,
    kind: 'single-file-bare',
    config: lora.config,
    weights: new ControlLoraWeights(lora, layout, unet),
    dtypes: new Map(),
    difference: false,
    // ComfyUI's ControlLora keeps its default (no global average pooling) whatever the file's name.
    globalAveragePooling: false,
  };
}

/**
 * A Control-LoRA as a CONTROL_NET value: its hint encoder runs from the file; each model it is
 * sampled with gets its own ControlNet (built, cached and pooled by the parts runtime under a hash of
 * the file and the model's identity).
 */
export function controlLoraModel(runtime: PartsRuntime, lora: ControlLoraFile, hash: string): ControlNetModel {
  const hintOnly: ControlNetFile = { file: lora.file, kind: 'single-file-bare', config: lora.config, weights: lora.weights, dtypes: new Map(), difference: false, globalAveragePooling: false };
  const hintNet = controlNetModel(runtime, hintOnly, hash);
  // Only the hint part of hintNet is ever run: its main part would lack the UNet weights.
  const perModel = new Map<string, Promise<ControlNetModel>>();
  const forModel = (model: ModelHandle): Promise<ControlNetModel> => {
    let hit = perModel.get(model.id);
    if (!hit) {
      hit = controlLoraNet(lora, model).then((cn) => controlNetModel(runtime, cn, createHash('sha256').update(`control-lora\0${hash}\0${model.id}`).digest('hex')));
      hit.catch(() => perModel.delete(model.id));
      perModel.set(model.id, hit);
    }
    return hit;
  };
  const runs = { hint: 0, net: 0 };
  const self: ControlNetModel = {
    kind: 'controlnet',
    id: `control-lora:${hash}`,
    file: lora.file,
    config: lora.config,
    globalAveragePooling: false,
    controlType: [],
    withControlType: () => self,
    runs,
    async encodeHint(hint: Tensor, signal?: AbortSignal) {
      runs.hint++;
      return hintNet.encodeHint(hint, signal);
    },
    async run(args) {
      if (!args.model) throw new Error(`${lora.file} is a Control-LoRA: it needs the model it is sampled with (this sampler path does not pass it)`);
      const net = await forModel(args.model);
      runs.net++;
      return net.run(args);
    },
  };
  return self;
}
