import path from 'node:path';
import { f16ToF32, f32ToBf16, f32ToF16, type Dtype } from '../../core/dtype.ts';
import { PrefixedWeightSource, type WeightSource } from '../../core/weights.ts';
import { openWeights } from '../../formats/open-weights.ts';
import { UnsupportedModelError } from '../errors.ts';
import { RenamedWeightSource } from '../families/sd1/weight-views.ts';
import { diffusersControlNetKeys, isDiffusersControlNet } from './diffusers-keys.ts';
import { controlNetLayout, type ControlNetConfig } from './layout.ts';
import { isT2IAdapter } from './adapter-layout.ts';
import { t2iAdapterFromSource, type T2IAdapterFile } from './adapter.ts';
import { isUnionControlNet, isUnionKey, readUnionConfig, unionKeyName } from './union.ts';
import { readControlLora, type ControlLoraFile } from './control-lora-file.ts';
import { controlNetUnet } from './unet-config.ts';

/**
 * ControlNet files as ComfyUI's `load_controlnet` reads them: the single-file layout (ControlNet
 * 1.0/1.1, keys under `control_model.` or bare), diffusers' ControlNetModel (renamed by key map),
 * and difference ControlNets (weights stored relative to a model; see `withDifference`). The
 * architecture is read from shapes by the UNet detection (`controlNetUnet`: readUnetConfig, encoder half only);
 * ControlNets of other families and the kinds Weft does not run yet are refused by name.
 */

export type ControlNetLayoutKind = 'single-file' | 'single-file-bare' | 'diffusers';

export interface ControlNetFile {
  readonly file: string;
  readonly kind: ControlNetLayoutKind;
  readonly config: ControlNetConfig;
  /** The weights under bare cldm names (`input_blocks.1.0.in_layers.2.weight`, `zero_convs.0.0.weight`, ...). */
  readonly weights: WeightSource;
  /** Stored dtype of each bare name (for a difference ControlNet's sums, which ComfyUI does in that dtype). */
  readonly dtypes: ReadonlyMap<string, Dtype>;
  /** A difference ControlNet (a `difference` tensor beside `control_model.*`): its UNet copy is relative to a model. */
  readonly difference: boolean;
  /** ComfyUI's shuffle rule: residuals averaged over the image when the file name ends in `_shuffle` or `_shuffle_fp16`. */
  readonly globalAveragePooling: boolean;
}

const SINGLE_PREFIX = 'control_model.';
const ZERO_CONV0 = 'zero_convs.0.0.weight';

/** What a file that is not a ControlNet this loader runs is, when its names tell (checked after the ControlNet layouts). */
function otherKind(names: readonly string[]): string | undefined {
  const has = (re: RegExp): boolean => names.some((n) => re.test(n));
  if (has(/^backbone\.\d+\./)) return 'a Stable Cascade ControlNet';
  if (has(/^controlnet_blocks\.\d+\./) || has(/^controlnet_x_embedder\./) || has(/^controlnet_single_blocks\./)) return 'a ControlNet of a transformer family (SD3, Flux, HunyuanDiT)';
  if (has(/^lllite_unet_/)) return 'a ControlNet-LLLite';
  return undefined;
}

function verify(ws: WeightSource, cfg: ControlNetConfig, file: string): void {
  const problems: string[] = [];
  for (const [name, shape] of controlNetLayout(cfg)) {
    if (!ws.has(name)) problems.push(`missing ${name}`);
    else {
      const got = ws.shape(name);
      if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) problems.push(`${name} has shape [${got.join(', ')}], expected [${shape.join(', ')}]`);
    }
    if (problems.length >= 5) break;
  }
  if (problems.length) throw new Error(`${file}: not a consistent ${cfg.union ? 'Union ' : ''}ControlNet: ${problems.join('; ')}`);
}

/** Reads a ControlNet file's layout, architecture and weights (tensor data is read later, on demand). */
export function readControlNet(file: string): ControlNetFile {
  // .pth/.ckpt ControlNets go through the non-executing pickle reader, as every other loader's files do.
  const sf = openWeights(file);
  return controlNetFromSource(file, sf, (n) => sf.dtype(n));
}

/** What ComfyUI's ControlNetLoader accepts: a ControlNet, a Control-LoRA or, when the names say so, a T2I-Adapter. */
export type ControlFile =
  | { readonly kind: 'controlnet'; readonly cn: ControlNetFile }
  | { readonly kind: 't2i-adapter'; readonly adapter: T2IAdapterFile }
  | { readonly kind: 'control-lora'; readonly lora: ControlLoraFile };

/** ComfyUI's load_controlnet_state_dict order: Control-LoRAs, the ControlNet layouts, then load_t2i_adapter's. */
export function readControlModel(file: string): ControlFile {
  const sf = openWeights(file);
  const names = sf.names();
  if (names.includes('lora_controlnet')) return { kind: 'control-lora', lora: readControlLora(file, sf) };
  const controlNet = isDiffusersControlNet(names) || names.includes(SINGLE_PREFIX + ZERO_CONV0) || names.includes(ZERO_CONV0) || names.includes('lora_controlnet');
  if (!controlNet && isT2IAdapter(names)) return { kind: 't2i-adapter', adapter: t2iAdapterFromSource(file, sf) };
  return { kind: 'controlnet', cn: controlNetFromSource(file, sf, (n) => sf.dtype(n)) };
}

/** The same over any named tensors (`dtypeOf` gives each one's stored dtype); `file` names it in messages and decides the shuffle rule. */
export function controlNetFromSource(file: string, sf: WeightSource, dtypeOf: (name: string) => Dtype): ControlNetFile {
  const names = sf.names();
  let kind: ControlNetLayoutKind;
  let weights: WeightSource;
  const dtypes = new Map<string, Dtype>();
  if (names.includes('lora_controlnet')) throw new Error(`${file} is a Control-LoRA (lora_controlnet), not a full ControlNet (readControlModel loads both)`);
  const union = isUnionControlNet(names);
  // ComfyUI reads the union modules in the diffusers layout only (xinsir's files); in another layout it would run without them.
  if (union && !isDiffusersControlNet(names)) {
    throw new UnsupportedModelError(
      'a ControlNet Union outside the diffusers layout (control_add_embedding without controlnet_cond_embedding.conv_in.weight)',
      'ComfyUI reads union ControlNets in the diffusers layout only (xinsir controlnet-union-sdxl-1.0)',
    );
  }
  if (isDiffusersControlNet(names)) {
    kind = 'diffusers';
    const map = diffusersControlNetKeys(names, (n) => sf.shape(n));
    // The task embedding and control-type modules keep their names, but for nn.MultiheadAttention's fused in_proj (ComfyUI's rename).
    if (union) for (const n of names) if (isUnionKey(unionKeyName(n))) map.set(n, unionKeyName(n));
    const entries = new Map([...map].map(([d, l]) => [l, { source: d, shape: sf.shape(d) }] as const));
    for (const [d, l] of map) dtypes.set(l, dtypeOf(d));
    weights = new RenamedWeightSource(sf, entries);
  } else if (names.includes(SINGLE_PREFIX + ZERO_CONV0) || names.includes(ZERO_CONV0)) {
    const prefix = names.includes(SINGLE_PREFIX + ZERO_CONV0) ? SINGLE_PREFIX : '';
    kind = prefix ? 'single-file' : 'single-file-bare';
    for (const n of names) if (n.startsWith(prefix)) dtypes.set(n.slice(prefix.length), dtypeOf(n));
    weights = prefix ? new PrefixedWeightSource(sf, prefix) : sf;
  } else {
    if (isT2IAdapter(names)) throw new Error(`${file} is a T2I-Adapter, not a ControlNet (readControlModel loads both)`);
    const other = otherKind(names);
    if (other) throw new UnsupportedModelError(other, 'Weft runs SD1 ControlNets in the ControlNet 1.x and diffusers layouts for now');
    throw new Error(`${file}: not a ControlNet: no ${SINGLE_PREFIX}${ZERO_CONV0}, ${ZERO_CONV0} or controlnet_cond_embedding.conv_in.weight`);
  }
  if (!weights.has('input_hint_block.0.weight')) throw new Error(`${file}: not a ControlNet 1.x: it has zero convs but no hint encoder (input_hint_block.0.weight)`);
  const unet = controlNetUnet(weights);
  const unionCfg = union ? readUnionConfig(weights, file) : undefined;
  if (unionCfg && unionCfg.width !== unet.modelChannels) {
    throw new Error(`${file}: ControlNet Union task_embedding is ${unionCfg.width} wide but the encoded hint is ${unet.modelChannels} (the model width); they are added together`);
  }
  const config: ControlNetConfig = { unet, hintChannels: weights.shape('input_hint_block.0.weight')[1], ...(unionCfg ? { union: unionCfg } : {}) };
  verify(weights, config, file);
  const base = path.basename(file).replace(/\.[^.]*$/, '');
  return {
    file,
    kind,
    config,
    weights,
    dtypes,
    // ComfyUI adds the model only in the single-file layout with the `control_model.` prefix.
    difference: kind === 'single-file' && names.includes('difference'),
    globalAveragePooling: base.endsWith('_shuffle') || base.endsWith('_shuffle_fp16'),
  };
}

/** Rounds a float32 value to a stored dtype and back, as a torch tensor of that dtype holds it. */
function roundTo(dtype: Dtype): (v: number) => number {
  if (dtype === 'F16') return (v) => f16ToF32(f32ToF16(v));
  if (dtype === 'BF16') {
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    return (v) => {
      u[0] = f32ToBf16(v) << 16;
      return f[0];
    };
  }
  if (dtype === 'F64') return (v) => v;
  return Math.fround;
}

/** A view of `inner` with some tensors replaced by computed values (which no longer lie in the file). */
class ReplacedWeightSource implements WeightSource {
  constructor(
    private readonly inner: WeightSource,
    private readonly over: ReadonlyMap<string, Float32Array>,
  ) {}
  has(name: string): boolean {
    return this.inner.has(name);
  }
  names(): string[] {
    return this.inner.names();
  }
  shape(name: string): readonly number[] {
    return this.inner.shape(name);
  }
  get(name: string): Float32Array {
    return this.over.get(name) ?? this.inner.get(name);
  }
  raw(name: string): { dtype: 'F32' | 'F16'; bytes: Uint8Array } | undefined {
    return this.over.has(name) ? undefined : this.inner.raw?.(name);
  }
  locate(name: string): ReturnType<NonNullable<WeightSource['locate']>> {
    return this.over.has(name) ? undefined : this.inner.locate?.(name);
  }
}

/**
 * A difference ControlNet made absolute against a model, as ComfyUI's load_controlnet does for
 * DiffControlNetLoader: every ControlNet tensor the model's UNet also has (`time_embed.*`,
 * `input_blocks.*`, `middle_block.*`) gets the model's (patched) weight added, in the ControlNet's
 * stored dtype (`cd += model_sd[k].type(cd.dtype)`). `readModel` gives a UNet weight by its bare
 * name, or undefined where the model has none.
 */
export async function withDifference(cn: ControlNetFile, readModel: (bareUnetName: string) => Promise<Float32Array | undefined>, modelShape: (bareUnetName: string) => readonly number[] | undefined): Promise<ControlNetFile> {
  if (!cn.difference) return cn;
  const over = new Map<string, Float32Array>();
  for (const name of cn.weights.names()) {
    const shape = modelShape(name);
    if (!shape) continue;
    const own = cn.weights.shape(name);
    if (shape.length !== own.length || shape.some((d, i) => d !== own[i])) {
      throw new Error(`${cn.file}: difference ControlNet tensor ${name} has shape [${own.join(', ')}] but the model's is [${shape.join(', ')}]: it was made for another model`);
    }
    const m = await readModel(name);
    if (!m) continue;
    const round = roundTo(cn.dtypes.get(name) ?? 'F32');
    const d = cn.weights.get(name);
    const out = new Float32Array(d.length);
    for (let i = 0; i < d.length; i++) out[i] = round(d[i] + round(m[i]));
    over.set(name, out);
  }
  return { ...cn, weights: new ReplacedWeightSource(cn.weights, over), difference: false };
}
