import type { NodeContext } from '../../engine/registry/context.ts';
import type { DetailOptions } from '../../engine/sampling/detail/detail-for-each.ts';
import { IMPACT_SCHEDULERS } from '../../engine/sampling/detail/impact-sample.ts';
import type { ModelHandle, VaeHandle } from '../../engine/models/handles.ts';
import type { Conditioning } from '../../engine/sampling/conditioning.ts';
import { toSeed } from '../../engine/sampling/ksampler.ts';
import { SAMPLER_NAMES } from '../../engine/sampling/samplers/index.ts';

/**
 * The Impact Pack's detailer inputs shared by DetailerForEach and FaceDetailer (defaults and ranges
 * as modules/impact/impact_pack.py declares them), and their translation to the detail pass.
 */

const MAX_RESOLUTION = 16384;
export const SEED_MAX = 0xffffffffffffffff;

export const detailerHead = {
  guide_size: { type: 'FLOAT', default: 512, min: 64, max: MAX_RESOLUTION, step: 8 },
  guide_size_for: { type: 'BOOLEAN', default: true, labelOn: 'bbox', labelOff: 'crop_region' },
  max_size: { type: 'FLOAT', default: 1024, min: 64, max: MAX_RESOLUTION, step: 8 },
  seed: { type: 'INT', default: 0, min: 0, max: SEED_MAX, controlAfterGenerate: true },
  steps: { type: 'INT', default: 20, min: 1, max: 10000 },
  cfg: { type: 'FLOAT', default: 8.0, min: 0.0, max: 100.0 },
  sampler_name: { type: 'COMBO', options: [...SAMPLER_NAMES] },
  scheduler: { type: 'COMBO', options: [...IMPACT_SCHEDULERS] },
  positive: { type: 'CONDITIONING' },
  negative: { type: 'CONDITIONING' },
  denoise: { type: 'FLOAT', default: 0.5, min: 0.0001, max: 1.0, step: 0.01 },
  feather: { type: 'INT', default: 5, min: 0, max: 100, step: 1 },
  noise_mask: { type: 'BOOLEAN', default: true, labelOn: 'enabled', labelOff: 'disabled' },
  force_inpaint: { type: 'BOOLEAN', default: true, labelOn: 'enabled', labelOff: 'disabled' },
} as const;

export const wildcardInput = { type: 'STRING', multiline: true, dynamicPrompts: false } as const;
export const cycleInput = { type: 'INT', default: 1, min: 1, max: 10, step: 1 } as const;

export const detailerOptional = {
  detailer_hook: { type: 'DETAILER_HOOK' },
  inpaint_model: { type: 'BOOLEAN', default: false, labelOn: 'enabled', labelOff: 'disabled' },
  noise_mask_feather: { type: 'INT', default: 20, min: 0, max: 100, step: 1 },
  scheduler_func_opt: { type: 'SCHEDULER_FUNC' },
} as const;

export interface DetailerArgs {
  model: ModelHandle;
  vae: VaeHandle;
  positive: Conditioning;
  negative: Conditioning;
  guide_size: number;
  guide_size_for: boolean;
  max_size: number;
  seed: number;
  steps: number;
  cfg: number;
  sampler_name: string;
  scheduler: string;
  denoise: number;
  feather: number;
  noise_mask: boolean;
  force_inpaint: boolean;
  wildcard: string;
  cycle: number;
  detailer_hook?: unknown;
  inpaint_model?: boolean;
  noise_mask_feather?: number;
  scheduler_func_opt?: unknown;
}

/**
 * The options of one detail pass. Inputs Weft has no counterpart for are ignored with a warning where
 * the Impact Pack's result without them is well defined (wildcard text, detailer hooks, scheduler
 * functions).
 */
export function detailOptions(i: DetailerArgs, ctx: NodeContext): DetailOptions {
  if (i.inpaint_model && !i.noise_mask)
    ctx.log.warn(`${ctx.classType} (node ${ctx.nodeId}): inpaint_model has no effect with noise_mask disabled (as in the Impact Pack)`);
  if (i.wildcard.trim() !== '')
    ctx.log.warn(`${ctx.classType} (node ${ctx.nodeId}): wildcard text is ignored (Weft has no wildcard processor)`);
  if (i.detailer_hook !== undefined)
    ctx.log.warn(`${ctx.classType} (node ${ctx.nodeId}): detailer_hook is ignored (no detailer hooks in Weft)`);
  if (i.scheduler_func_opt !== undefined)
    ctx.log.warn(`${ctx.classType} (node ${ctx.nodeId}): scheduler_func_opt is ignored; the scheduler input is used`);
  let step = 0;
  let total = 0;
  return {
    model: i.model,
    vae: i.vae,
    positive: i.positive,
    negative: i.negative,
    guideSize: i.guide_size,
    guideForBbox: i.guide_size_for,
    maxSize: i.max_size,
    seed: toSeed(i.seed),
    steps: i.steps,
    cfg: i.cfg,
    samplerName: i.sampler_name,
    scheduler: i.scheduler,
    denoise: i.denoise,
    feather: i.feather,
    noiseMask: i.noise_mask,
    forceInpaint: i.force_inpaint,
    cycle: i.cycle,
    // Same-size, disjoint segments share a sampling run where that is exact up to the UNet's batch
    // arithmetic (the engine checks and logs when it is not); the Impact Pack samples one by one.
    batch: true,
    noiseMaskFeather: i.noise_mask_feather ?? 0,
    inpaintModel: i.inpaint_model ?? false,
    signal: ctx.signal,
    log: (line) => ctx.log.info(line),
    onStep: (s, t, preview) => {
      if (s === 1) total += t;
      step++;
      ctx.progress(step, Math.max(total, step), preview);
    },
  };
}
