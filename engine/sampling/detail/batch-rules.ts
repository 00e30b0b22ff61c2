import type { ModelHandle } from '../../models/handles.ts';
import { samplerNeedsNoise } from '../samplers/index.ts';

/**
 * When crops sampled as one batch give each crop its own run's result, up to the UNet's batch
 * arithmetic: shared by the Impact Pack detail pass and ADetailer, which add their own geometric rules.
 */

/** Samplers whose arithmetic couples the items of a batch (dpm_adaptive's error norm spans the whole tensor). */
const BATCH_COUPLED_SAMPLERS: ReadonlySet<string> = new Set(['dpm_adaptive']);

/** Why the sampler or the model would mix the items of a batch, or undefined when neither does. */
export function batchMixing(samplerName: string, model: ModelHandle): string | undefined {
  if (samplerNeedsNoise(samplerName)) return `${samplerName} draws step noise, one stream per run`;
  if (BATCH_COUPLED_SAMPLERS.has(samplerName)) return `${samplerName} couples the items of a batch`;
  if (model.wrappers?.length || model.samplerCfgFunction || model.samplerPreCfgFunctions?.length)
    return 'the model has wrappers or CFG functions that may treat the batch as a whole';
  return undefined;
}

/** Same-shape items' values one after the other: the data of their batch. */
export function stackItems(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
