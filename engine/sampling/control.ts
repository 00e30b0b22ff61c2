import type { Tensor } from '../core/tensor.ts';
import type { ControlResiduals } from '../models/handles.ts';
import type { ResolvedEntry } from './cond-areas.ts';
import type { Control, ControlRequest } from './conditioning.ts';

/**
 * The residuals of a control chain for one batch, as ComfyUI's ControlBase.get_control +
 * control_merge give them: the previous control is asked first, then each position holds
 * previous + own (whichever exists where only one does).
 */
export async function chainResiduals(control: Control, req: ControlRequest): Promise<ControlResiduals | undefined> {
  const prev = control.previous ? await chainResiduals(control.previous, req) : undefined;
  const own = await control.getControl(req);
  if (!own) return prev;
  if (!prev) return own;
  const n = Math.max(own.input.length, prev.input.length);
  const input = Array.from({ length: n }, (_, i) => add(prev.input[i], own.input[i]));
  const out: ControlResiduals = { input, middle: add(prev.middle, own.middle) };
  if (!own.afterInput && !prev.afterInput) return out;
  // T2I-Adapter residuals (ComfyUI's 'input' key) merge position by position like the others.
  const a = own.afterInput ?? [];
  const b = prev.afterInput ?? [];
  return { ...out, afterInput: Array.from({ length: Math.max(a.length, b.length) }, (_, i) => add(b[i], a[i])) };
}

function add(prev: Tensor | undefined, own: Tensor | undefined): Tensor | undefined {
  if (!prev || !own) return own ?? prev;
  if (prev.data.length !== own.data.length) {
    throw new Error(`control residuals of shapes [${prev.shape.join(', ')}] and [${own.shape.join(', ')}] cannot be added`);
  }
  const data = new Float32Array(own.data.length);
  for (let i = 0; i < data.length; i++) data[i] = prev.data[i] + own.data[i];
  return { shape: own.shape, data };
}

/**
 * ComfyUI's apply_empty_x_to_equal_area for 'control' (process_conds): the controls of positive
 * entries without an area that the legacy ControlNetApply marked `control_apply_to_uncond` are given
 * to the negative entries without an area and without a control (cycling over them, the last one
 * given wins), unless some negative entry without an area already has a control.
 */
export function controlsToUncond(positive: ResolvedEntry[], negative: ResolvedEntry[]): void {
  const controls = positive.filter((e) => e.controlApplyToUncond && !e.area && e.control).map((e) => e.control!);
  const free = negative.flatMap((e, i) => (e.area ? [] : [i]));
  if (free.some((i) => negative[i].control) || !controls.length || !free.length) return;
  controls.forEach((c, k) => {
    const i = free[k % free.length];
    negative[i] = { ...negative[i], control: c };
  });
}
