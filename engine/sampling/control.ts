import type { Tensor } from '../core/tensor.ts';
import type { ControlResiduals } from '../models/handles.ts';
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
  return { input, middle: add(prev.middle, own.middle) };
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
