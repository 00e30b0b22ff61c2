import { describeShape, tensor, type ImageTensor, type Tensor } from '../../../engine/core/tensor.ts';
import { imageToU8, u8ToFloat, type U8Mat } from '../../../engine/image/preprocess/mat.ts';
import type { NodeContext } from '../../../engine/registry/context.ts';

/** ComfyUI's MAX_RESOLUTION, which the aux package copies. */
export const MAX_RESOLUTION = 16384;

/** The aux package's `INPUT.RESOLUTION()`: 512 by default, 64..16384 in steps of 64. */
export const resolutionInput = { type: 'INT', default: 512, min: 64, max: MAX_RESOLUTION, step: 64 } as const;

/** The aux package's display categories. */
export const CATEGORY = {
  lines: 'ControlNet Preprocessors/Line Extractors',
  tile: 'ControlNet Preprocessors/tile',
  t2i: 'ControlNet Preprocessors/T2IAdapter-only',
  recolor: 'ControlNet Preprocessors/Recolor',
  others: 'ControlNet Preprocessors/others',
  pose: 'ControlNet Preprocessors/Faces and Poses Estimators',
  depth: 'ControlNet Preprocessors/Normal and Depth Estimators',
} as const;

/** `common_annotator_call`'s resolution rule: an int of at least 64, else 512. */
export function detectResolution(resolution: number | undefined): number {
  return resolution !== undefined && Number.isInteger(resolution) && resolution >= 64 ? resolution : 512;
}

export function expectImage(image: ImageTensor, nodeName: string): void {
  if (image.shape.length !== 4) throw new Error(`${nodeName}: image must be an IMAGE [B, H, W, C], got ${describeShape(image.shape)}`);
  const [b, h, w, c] = image.shape;
  if (b < 1 || h < 1 || w < 1) throw new Error(`${nodeName}: image ${describeShape(image.shape)} is empty`);
  if (c !== 1 && c !== 3 && c !== 4) throw new Error(`${nodeName}: image has ${c} channels; 1 (grey), 3 (RGB) or 4 (RGBA) are accepted`);
}

/**
 * comfyui_controlnet_aux's `common_annotator_call`: each batch item to uint8 (`image * 255` truncated),
 * through the detector, back to float / 255. All results must share one size, as the package stacks them.
 */
export async function annotatorCall(
  nodeName: string,
  image: ImageTensor,
  ctx: NodeContext | undefined,
  detect: (img: U8Mat, index: number) => U8Mat | Promise<U8Mat>,
): Promise<ImageTensor> {
  expectImage(image, nodeName);
  const batch = image.shape[0];
  let out: Tensor | undefined;
  for (let b = 0; b < batch; b++) {
    ctx?.signal.throwIfAborted();
    const r = await detect(imageToU8(image, b), b);
    if (!out) out = tensor([batch, r.h, r.w, r.c]);
    else if (out.shape[1] !== r.h || out.shape[2] !== r.w || out.shape[3] !== r.c) {
      throw new Error(
        `${nodeName}: batch item ${b} gave ${r.w}x${r.h}x${r.c}, item 0 gave ${out.shape[2]}x${out.shape[1]}x${out.shape[3]}`,
      );
    }
    u8ToFloat(r, out.data, b * r.h * r.w * r.c);
    ctx?.progress(b + 1, batch);
  }
  if (!out) throw new Error(`${nodeName}: empty batch`);
  return out;
}
