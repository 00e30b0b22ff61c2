import { pyRound } from '../../engine/core/py-round.ts';
import { A1111_CONTROL_MODES, A1111Control, type A1111ControlMode } from '../../engine/models/controlnet/a1111-control.ts';
import { A1111_RESIZE_MODES, a1111ResizeHint, type A1111ResizeMode } from '../../engine/models/controlnet/a1111-resize.ts';
import type { ControlLink } from '../../engine/models/controlnet/control.ts';
import { defineNode } from '../../engine/registry/types.ts';
import type { Conditioning, ConditioningEntry, Control } from '../../engine/sampling/conditioning.ts';
import { apply, hintOf } from './controlnet.ts';

/**
 * The A1111 ControlNet extension's unit as a node: weight, guidance start/end as fractions of the
 * sampler's steps, control mode and resize mode (see docs/controlnet.md, "The A1111 controls"), and
 * pixel perfect as comfyui_controlnet_aux's PixelPerfectResolution (the preprocessor resolution the
 * extension computes from the image and the generation size).
 */

const asControl = (c: A1111Control): Control => c;
const asLink = (c: Control | undefined): ControlLink | undefined => c;

export const ControlNetApplyA1111 = defineNode({
  name: 'ControlNetApplyA1111',
  displayName: 'Apply ControlNet (A1111)',
  category: 'conditioning/controlnet',
  description:
    "Applies a ControlNet or T2I-Adapter as the A1111 ControlNet extension does: guidance start/end count sampler steps, the control mode's soft weights and cond-only application, and the extension's resize modes.",
  searchAliases: ['a1111 controlnet', 'webui controlnet', 'control mode', 'guess mode', 'pixel perfect'],
  inputs: {
    required: {
      positive: { type: 'CONDITIONING' },
      negative: { type: 'CONDITIONING' },
      control_net: { type: 'CONTROL_NET' },
      image: { type: 'IMAGE' },
      weight: { type: 'FLOAT', default: 1.0, min: 0.0, max: 10.0, step: 0.05 },
      guidance_start: { type: 'FLOAT', default: 0.0, min: 0.0, max: 1.0, step: 0.01 },
      guidance_end: { type: 'FLOAT', default: 1.0, min: 0.0, max: 1.0, step: 0.01 },
      control_mode: { type: 'COMBO', options: A1111_CONTROL_MODES, default: 'Balanced' },
      resize_mode: { type: 'COMBO', options: A1111_RESIZE_MODES, default: 'Crop and Resize' },
    },
  },
  outputs: [
    { type: 'CONDITIONING', name: 'positive' },
    { type: 'CONDITIONING', name: 'negative' },
  ],
  run({ positive, negative, control_net, image, weight, guidance_start, guidance_end, control_mode, resize_mode }) {
    if (weight === 0) return [positive, negative];
    const mode = resize_mode as A1111ResizeMode;
    const hint = hintOf(image);
    const resize = (t: typeof hint, width: number, height: number): typeof hint => a1111ResizeHint(t, mode, width, height);
    const unit = { guidanceStart: guidance_start, guidanceEnd: guidance_end, controlMode: control_mode as A1111ControlMode };
    // One unit per distinct previous control, shared by positive and negative (the A1111 extension runs a
    // unit on the whole cond/uncond batch; cond_mark tells the rows apart).
    const made = new Map<Control | undefined, Control>();
    const attach = (c: Conditioning): Conditioning =>
      c.map((e): ConditioningEntry => {
        let control = made.get(e.control);
        if (!control) {
          const inner = apply(control_net, hint, weight, 0, 1, undefined, resize);
          made.set(e.control, (control = asControl(new A1111Control(inner, unit, asLink(e.control)))));
        }
        return { ...e, control, controlApplyToUncond: false };
      });
    return [attach(positive), attach(negative)];
  },
});

export const PixelPerfectResolution = defineNode({
  name: 'PixelPerfectResolution',
  displayName: 'Pixel Perfect Resolution',
  category: 'ControlNet Preprocessors',
  description:
    "The A1111 extension's pixel perfect: the preprocessor resolution that maps the image's short side onto the generation size under the resize mode.",
  inputs: {
    required: {
      original_image: { type: 'IMAGE' },
      image_gen_width: { type: 'INT', default: 512, min: 64, max: 8192, step: 8 },
      image_gen_height: { type: 'INT', default: 512, min: 64, max: 8192, step: 8 },
      resize_mode: { type: 'COMBO', options: A1111_RESIZE_MODES, default: 'Just Resize' },
    },
  },
  outputs: [{ type: 'INT', name: 'RESOLUTION (INT)' }],
  run({ original_image, image_gen_width, image_gen_height, resize_mode }) {
    return [
      pixelPerfectResolution(
        original_image.shape[1],
        original_image.shape[2],
        image_gen_height,
        image_gen_width,
        resize_mode as A1111ResizeMode,
      ),
    ];
  },
});

/** external_code.pixel_perfect_resolution: the larger (Resize and Fill: smaller) scale times the short side, rounded half to even. */
export function pixelPerfectResolution(rawH: number, rawW: number, targetH: number, targetW: number, mode: A1111ResizeMode): number {
  const k0 = targetH / rawH;
  const k1 = targetW / rawW;
  const estimation = (mode === 'Resize and Fill' ? Math.min(k0, k1) : Math.max(k0, k1)) * Math.min(rawH, rawW);
  return pyRound(estimation);
}

export const nodes = [ControlNetApplyA1111, PixelPerfectResolution];
