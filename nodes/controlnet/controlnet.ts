import type { ImageTensor, Tensor } from '../../engine/core/tensor.ts';
import { nhwcToNchw } from '../../engine/image/layout.ts';
import { ControlNetControl, type ControlLink, type ControlNetApplication } from '../../engine/models/controlnet/control.ts';
import { T2IAdapterControl } from '../../engine/models/controlnet/adapter-control.ts';
import type { T2IAdapterModel } from '../../engine/models/controlnet/adapter.ts';
import { ControlNetLoader as Loader } from '../../engine/models/controlnet/loader.ts';
import type { ControlNetModel } from '../../engine/models/controlnet/model.ts';
import type { ModelManager } from '../../engine/models/manager.ts';
import type { ListingContext, NodeContext } from '../../engine/registry/context.ts';
import { defineNode } from '../../engine/registry/types.ts';
import type { Conditioning, ConditioningEntry, Control } from '../../engine/sampling/conditioning.ts';
import { modelManager } from '../model/services.ts';

/**
 * ComfyUI's ControlNet nodes (nodes.py): the two loaders and the two apply nodes, with its names,
 * inputs, defaults and outputs. Applying attaches a `ControlNetControl` (hint, strength, range) to
 * each conditioning entry, chained after the entry's existing control.
 */

const loaders = new WeakMap<ModelManager, Loader>();

function controlNets(ctx: NodeContext): Loader {
  const m = modelManager(ctx);
  let l = loaders.get(m);
  if (!l) loaders.set(m, (l = new Loader(m.runtime, { cacheDir: m.opts.cacheDir, log: m.opts.log })));
  return l;
}

const controlnetFiles = (env: ListingContext): string[] => env.paths.listFiles('controlnet');

/** A control of this layer as the sampling layer's Control (the same shape; checked here, where both are visible). */
const asControl = (c: ControlNetControl | T2IAdapterControl): Control => c;
const asLink = (c: Control | undefined): ControlLink | undefined => c;

/** IMAGE [B, H, W, C] → the hint [B, C, H, W] (ComfyUI's `image.movedim(-1, 1)`). */
export function hintOf(image: ImageTensor): Tensor {
  if (image.shape.length !== 4) throw new Error(`ControlNet image must be an IMAGE [B, H, W, C], got [${image.shape.join(', ')}]`);
  return nhwcToNchw(image);
}

export const ControlNetLoader = defineNode({
  name: 'ControlNetLoader',
  displayName: 'Load ControlNet Model',
  category: 'loaders',
  searchAliases: ['controlnet', 'control net', 'cn', 'load controlnet', 'control model'],
  inputs: { required: { control_net_name: { type: 'COMBO', options: controlnetFiles } } },
  outputs: [{ type: 'CONTROL_NET', name: 'CONTROL_NET' }],
  run({ control_net_name }, ctx) {
    return [controlNets(ctx).loadModel(ctx.paths.require('controlnet', control_net_name))];
  },
});

export const DiffControlNetLoader = defineNode({
  name: 'DiffControlNetLoader',
  displayName: 'Load ControlNet Model (diff)',
  category: 'loaders',
  searchAliases: ['controlnet', 'diff controlnet', 'difference controlnet'],
  inputs: { required: { model: { type: 'MODEL' }, control_net_name: { type: 'COMBO', options: controlnetFiles } } },
  outputs: [{ type: 'CONTROL_NET', name: 'CONTROL_NET' }],
  async run({ model, control_net_name }, ctx) {
    return [await controlNets(ctx).loadDiff(ctx.paths.require('controlnet', control_net_name), model)];
  },
});

/** A ControlNet or T2I-Adapter with its hint, strength and range, after `previous` (ComfyUI's set_cond_hint + set_previous_controlnet). */
export function apply(
  net: ControlNetModel | T2IAdapterModel,
  hint: Tensor,
  strength: number,
  startPercent: number,
  endPercent: number,
  previous: Control | undefined,
  resize?: ControlNetApplication['resize'],
): ControlNetControl | T2IAdapterControl {
  const application = { hint, strength, startPercent, endPercent, resize };
  return net.kind === 't2i-adapter'
    ? new T2IAdapterControl(net, application, asLink(previous))
    : new ControlNetControl(net, application, asLink(previous));
}

export const ControlNetApply = defineNode({
  name: 'ControlNetApply',
  displayName: 'Apply ControlNet (OLD)',
  category: 'conditioning/controlnet',
  deprecated: true,
  inputs: {
    required: {
      conditioning: { type: 'CONDITIONING' },
      control_net: { type: 'CONTROL_NET' },
      image: { type: 'IMAGE' },
      strength: { type: 'FLOAT', default: 1.0, min: 0.0, max: 10.0, step: 0.01 },
    },
  },
  outputs: [{ type: 'CONDITIONING', name: 'CONDITIONING' }],
  run({ conditioning, control_net, image, strength }) {
    if (strength === 0) return [conditioning];
    const hint = hintOf(image);
    // One control per entry, over the whole schedule; it also reaches the negative (control_apply_to_uncond).
    const out: Conditioning = conditioning.map((e): ConditioningEntry => ({
      ...e,
      control: asControl(apply(control_net, hint, strength, 0, 1, e.control)),
      controlApplyToUncond: true,
    }));
    return [out];
  },
});

export const ControlNetApplyAdvanced = defineNode({
  name: 'ControlNetApplyAdvanced',
  displayName: 'Apply ControlNet',
  category: 'conditioning/controlnet',
  inputs: {
    required: {
      positive: { type: 'CONDITIONING' },
      negative: { type: 'CONDITIONING' },
      control_net: { type: 'CONTROL_NET' },
      image: { type: 'IMAGE' },
      strength: { type: 'FLOAT', default: 1.0, min: 0.0, max: 10.0, step: 0.01 },
      start_percent: { type: 'FLOAT', default: 0.0, min: 0.0, max: 1.0, step: 0.001 },
      end_percent: { type: 'FLOAT', default: 1.0, min: 0.0, max: 1.0, step: 0.001 },
    },
    optional: { vae: { type: 'VAE' } },
  },
  outputs: [
    { type: 'CONDITIONING', name: 'positive' },
    { type: 'CONDITIONING', name: 'negative' },
  ],
  run({ positive, negative, control_net, image, strength, start_percent, end_percent }) {
    if (strength === 0) return [positive, negative];
    const hint = hintOf(image);
    // One new control per distinct previous control, shared by positive and negative entries, so a
    // cond and uncond that shared a UNet batch still share it (ComfyUI's `cnets` dict).
    const made = new Map<Control | undefined, Control>();
    const attach = (c: Conditioning): Conditioning =>
      c.map((e): ConditioningEntry => {
        let control = made.get(e.control);
        if (!control) made.set(e.control, (control = asControl(apply(control_net, hint, strength, start_percent, end_percent, e.control))));
        return { ...e, control, controlApplyToUncond: false };
      });
    return [attach(positive), attach(negative)];
  },
});

export const nodes = [ControlNetLoader, DiffControlNetLoader, ControlNetApply, ControlNetApplyAdvanced];
