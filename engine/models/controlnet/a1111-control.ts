import type { Tensor } from '../../core/tensor.ts';
import { unetSkipCount } from '../families/sd1/graphs/unet-graph.ts';
import type { ControlResiduals } from '../handles.ts';
import type { T2IAdapterControl } from './adapter-control.ts';
import type { ControlLink, ControlNetControl, ControlNetRequest } from './control.ts';

/**
 * A ControlNet or T2I-Adapter applied as the A1111 ControlNet extension applies a unit
 * (scripts/hook.py, `UnetHook.hook.forward`), on top of the ComfyUI computation of its residuals:
 *
 * - **Guidance start/end** are fractions of the sampler's steps: the unit is skipped at step i of n
 *   when i/n < start or i/n > end (`guidance_schedule_handler`), not the sigma range ComfyUI uses.
 * - **Weight** multiplies every residual (`control_scales`).
 * - **Control mode** ("improved guess mode"): *Balanced* applies the unit to cond and uncond alike.
 *   *My prompt is more important* is soft injection: ControlNet residual i (the 12 skips, then the
 *   middle block) gets weight · 0.825^(12 − i), so the deep, semantic residuals keep their weight and
 *   the shallow ones fade (0.825^12 ≈ 0.10); an adapter's four features get weight · (0.25, 0.62,
 *   0.825, 1). *ControlNet is more important* uses the same soft weights and applies the unit to the
 *   cond rows only (× cond_mark): the uncond prediction has no control, so CFG pushes the result
 *   towards the control by the CFG scale. Shuffle ControlNets (global average pooling) are always
 *   applied to the cond only, as in the extension.
 */

export const A1111_CONTROL_MODES = ['Balanced', 'My prompt is more important', 'ControlNet is more important'] as const;
export type A1111ControlMode = (typeof A1111_CONTROL_MODES)[number];

export interface A1111Unit {
  readonly guidanceStart: number;
  readonly guidanceEnd: number;
  readonly controlMode: A1111ControlMode;
}

/** The extension's soft-injection scales: per ControlNet residual (12 skips, then the middle block), or per adapter feature. */
export function softInjectionScales(kind: 'controlnet' | 't2i-adapter', residuals = 13): number[] {
  if (kind === 't2i-adapter') return [0.25, 0.62, 0.825, 1.0];
  return Array.from({ length: residuals }, (_, i) => 0.825 ** (residuals - 1 - i));
}

/** `t` with every row of an uncond chunk zeroed and batch-1 values repeated to `rows` (the extension's `c * cond_mark`). */
function condRowsOnly(t: Tensor | undefined, rows: number, condOrUncond: readonly number[]): Tensor | undefined {
  if (!t) return t;
  const per = t.data.length / t.shape[0];
  const perChunk = rows / condOrUncond.length;
  const data = new Float32Array(rows * per);
  for (let r = 0; r < rows; r++) {
    if (condOrUncond[Math.floor(r / perChunk)] !== 0) continue;
    const src = t.shape[0] === 1 ? 0 : r;
    data.set(t.data.subarray(src * per, (src + 1) * per), r * per);
  }
  return { shape: [rows, ...t.shape.slice(1)], data };
}

export class A1111Control implements ControlLink {
  constructor(
    readonly inner: ControlNetControl | T2IAdapterControl,
    readonly unit: A1111Unit,
    readonly previous?: ControlLink,
  ) {}

  private get kind(): 'controlnet' | 't2i-adapter' {
    return 'net' in this.inner ? 'controlnet' : 't2i-adapter';
  }

  async getControl(req: ControlNetRequest): Promise<ControlResiduals | undefined> {
    const { guidanceStart, guidanceEnd, controlMode } = this.unit;
    const f = req.stepFraction;
    if (f === undefined) throw new Error('an A1111 ControlNet unit needs the sampler steps (guidance start/end count steps); this guider did not pass its schedule');
    if (f < guidanceStart || f > guidanceEnd) return undefined;
    const soft = controlMode !== 'Balanced';
    const kind = this.kind;
    const scales = soft ? softInjectionScales(kind, 'net' in this.inner ? unetSkipCount(this.inner.net.config.unet) + 1 : 4) : undefined;
    const r = await this.inner.residuals(req, scales);
    const pooling = 'net' in this.inner && this.inner.net.globalAveragePooling;
    if (controlMode !== 'ControlNet is more important' && !pooling) return r;
    const rows = req.x.shape[0];
    const marks = req.condOrUncond ?? Array.from({ length: req.chunks }, () => 0);
    const only = (t: Tensor | undefined): Tensor | undefined => condRowsOnly(t, rows, marks);
    return { input: r.input.map(only), middle: only(r.middle), afterInput: r.afterInput?.map(only) };
  }
}
