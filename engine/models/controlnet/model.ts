import * as ort from 'onnxruntime-node';
import { InterruptedError } from '../../core/errors.ts';
import type { Tensor } from '../../core/tensor.ts';
import type { PartSpec, RunSession } from '../runtime/part.ts';
import type { T2IAdapterModel } from './adapter.ts';
import type { PartsRuntime } from '../runtime/parts-runtime.ts';
import { unetPlan } from '../families/sd1/unet-plan.ts';
import { buildControlNetGraph, buildHintGraph, CONTROLNET_IO, controlOutputName, HINT_IO } from './graph.ts';
import type { ControlNetConfig } from './layout.ts';
import type { ControlNetFile } from './load.ts';
import type { ModelHandle } from '../handles.ts';
import { controlTypeOneHot } from './union.ts';

/**
 * CONTROL_NET socket value: a loaded ControlNet whose two parts (hint encoder, main net) are built,
 * cached and pooled by the parts runtime like the UNet. It carries no hint or strength: applying it
 * (ControlNetApply*) makes a `ControlNetControl` with those.
 */
export interface ControlNetModel {
  readonly kind: 'controlnet';
  /** `controlnet:<hash>`: the weights' identity (a difference ControlNet's includes its model's id). */
  readonly id: string;
  readonly file: string;
  readonly config: ControlNetConfig;
  readonly globalAveragePooling: boolean;
  /** A Union ControlNet's control type (SetUnionControlNetType; ComfyUI's `control_type` extra arg): empty for "auto". */
  readonly controlType: readonly number[];
  /** The same ControlNet (sharing its sessions) with another control type; a ControlNet that is not a Union ignores it, as ComfyUI's does. */
  withControlType(types: readonly number[]): ControlNetModel;
  /** `input_hint_block(hint)` for a hint [B, hintChannels, 8h, 8w] → [B, modelChannels, h, w] (a Union's fused with its control type when one is set). */
  encodeHint(hint: Tensor, signal?: AbortSignal): Promise<Tensor>;
  /** The residuals before strength: one per skip connection, and the middle block's. */
  run(args: ControlNetRunArgs): Promise<{ input: Tensor[]; middle: Tensor }>;
  /** Runs of each part so far (the hint encoder runs once per hint and size, not per step). */
  readonly runs: { hint: number; net: number };
}

export interface ControlNetRunArgs {
  /** The UNet's input after calculate_input, [B, C, h, w]. */
  x: Tensor;
  timesteps: Float32Array;
  context: Tensor;
  /** Encoded hint [1 or B, modelChannels, h, w]. */
  hintFeatures: Tensor;
  /** The adm vector [B, admInChannels] of a ControlNet with a label embedding (SDXL's), as the UNet gets it. */
  y?: Tensor;
  /** The model sampled (a Control-LoRA's ControlNet is made of its UNet weights). */
  model?: ModelHandle;
  signal?: AbortSignal;
}

const toOrt = (t: Tensor): ort.Tensor => new ort.Tensor('float32', t.data, [...t.shape]);

function fromOrt(v: ort.Tensor | undefined, what: string): Tensor {
  if (!v || !(v.data instanceof Float32Array)) throw new Error(`ControlNet session returned no float32 ${what}`);
  return { shape: [...v.dims], data: v.data };
}

/** The parts of a ControlNet file, named by its content hash (a Union's has a third: the hint encoder with the type fusion). */
export function controlNetParts(cn: ControlNetFile, hash: string): { hint: PartSpec; net: PartSpec; hintUnion?: PartSpec } {
  const cfg = cn.config;
  const common = { hash, source: cn.file, prefix: '', weights: cn.weights };
  return {
    hint: { ...common, id: 'controlnet_hint', build: (w, o) => buildHintGraph(cfg, w, o) },
    net: { ...common, id: 'controlnet', build: (w, o) => buildControlNetGraph(cfg, w, o) },
    ...(cfg.union ? { hintUnion: { ...common, id: 'controlnet_hint_union', build: (w, o) => buildHintGraph(cfg, w, o, true) } } : {}),
  };
}

export function controlNetModel(runtime: PartsRuntime, cn: ControlNetFile, hash: string): ControlNetModel {
  const parts = controlNetParts(cn, hash);
  const runHint: RunSession = runtime.runner(parts.hint);
  const runNet: RunSession = runtime.runner(parts.net);
  const runHintUnion: RunSession | undefined = parts.hintUnion && runtime.runner(parts.hintUnion);
  const cfg = cn.config;
  const skips = unetPlan(cfg.unet).input.length;
  const runs = { hint: 0, net: 0 };
  const make = (controlType: readonly number[]): ControlNetModel => ({
    kind: 'controlnet',
    id: controlType.length && cfg.union ? `controlnet:${hash}:type${controlType.join(',')}` : `controlnet:${hash}`,
    file: cn.file,
    config: cfg,
    globalAveragePooling: cn.globalAveragePooling,
    controlType,
    withControlType: (types) => make([...types]),
    runs,
    async encodeHint(hint, signal) {
      if (signal?.aborted) throw new InterruptedError();
      if (hint.shape.length !== 4 || hint.shape[1] !== cfg.hintChannels) {
        throw new Error(`ControlNet hint must be [B, ${cfg.hintChannels}, H, W], got [${hint.shape.join(', ')}]`);
      }
      runs.hint++;
      if (cfg.union && runHintUnion && controlType.length) {
        const oneHot = controlTypeOneHot(cfg.union, controlType);
        const out = await runHintUnion({ [HINT_IO.hint]: toOrt(hint), [HINT_IO.controlType]: new ort.Tensor('float32', oneHot, [oneHot.length]) });
        return fromOrt(out[HINT_IO.out], 'hint features');
      }
      return fromOrt((await runHint({ [HINT_IO.hint]: toOrt(hint) }))[HINT_IO.out], 'hint features');
    },
    async run({ x, timesteps, context, hintFeatures, y, signal }) {
      if (signal?.aborted) throw new InterruptedError();
      if (x.shape.length !== 4 || x.shape[1] !== cfg.unet.inChannels) throw new Error(`this ControlNet takes a ${cfg.unet.inChannels}-channel latent, got [${x.shape.join(', ')}]`);
      if (context.shape[2] !== cfg.unet.contextDim) {
        throw new Error(`this ControlNet was made for a model with ${cfg.unet.contextDim}-wide text conditioning, but the conditioning is ${context.shape[2]} wide: it does not belong to this model's family`);
      }
      const adm = cfg.unet.admInChannels;
      if (adm !== undefined && (!y || y.shape[0] !== x.shape[0] || y.shape[1] !== adm)) {
        throw new Error(`this ControlNet takes the model's ${adm}-wide y (size and pooled-text) input for a batch of ${x.shape[0]}, got ${y ? `[${y.shape.join(', ')}]` : 'none'}`);
      }
      runs.net++;
      const oneHot = cfg.union && controlTypeOneHot(cfg.union, controlType);
      const out = await runNet({
        [CONTROLNET_IO.x]: toOrt(x),
        [CONTROLNET_IO.timesteps]: new ort.Tensor('float32', timesteps, [timesteps.length]),
        [CONTROLNET_IO.context]: toOrt(context),
        [CONTROLNET_IO.hintFeatures]: toOrt(hintFeatures),
        ...(adm !== undefined && y ? { [CONTROLNET_IO.y]: toOrt(y) } : {}),
        ...(oneHot ? { [CONTROLNET_IO.controlType]: new ort.Tensor('float32', oneHot, [oneHot.length]) } : {}),
      });
      return {
        input: Array.from({ length: skips }, (_, i) => fromOrt(out[controlOutputName(i)], controlOutputName(i))),
        middle: fromOrt(out[CONTROLNET_IO.outMiddle], CONTROLNET_IO.outMiddle),
      };
    },
  });
  return make([]);
}

declare module '../../registry/sockets.ts' {
  interface SocketValueTypes {
    /** A ControlNet or a T2I-Adapter, as ComfyUI's CONTROL_NET holds either. */
    CONTROL_NET: ControlNetModel | T2IAdapterModel;
  }
}
