import { resizeImageWithPad, removePad } from '../../../engine/image/preprocess/aux-resize.ts';
import { cvCanny } from '../../../engine/image/preprocess/cv-canny.ts';
import { korniaCanny } from '../../../engine/image/preprocess/kornia-canny.ts';
import { hwc3 } from '../../../engine/image/preprocess/mat.ts';
import { defineNode } from '../../../engine/registry/types.ts';
import { annotatorCall, CATEGORY, detectResolution, expectImage, resolutionInput } from './annotator-call.ts';

/** comfyui_controlnet_aux's CannyEdgePreprocessor: cv2.Canny on the image resized with pad to `resolution`. */
export const CannyEdgePreprocessor = defineNode({
  name: 'CannyEdgePreprocessor',
  displayName: 'Canny Edge',
  category: CATEGORY.lines,
  inputs: {
    required: { image: { type: 'IMAGE' } },
    optional: {
      low_threshold: { type: 'INT', default: 100, min: 0, max: 255, step: 1 },
      high_threshold: { type: 'INT', default: 200, min: 0, max: 255, step: 1 },
      resolution: resolutionInput,
    },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  async run({ image, low_threshold, high_threshold, resolution }, ctx) {
    const res = detectResolution(resolution);
    const out = await annotatorCall('CannyEdgePreprocessor', image, ctx, (img) => {
      const p = resizeImageWithPad(img, res);
      return hwc3(removePad(p, cvCanny(p.image, low_threshold ?? 100, high_threshold ?? 200)));
    });
    return [out];
  },
});

/** ComfyUI core's Canny (comfy_extras/nodes_canny.py): kornia's canny with float thresholds, edges as RGB. */
export const Canny = defineNode({
  name: 'Canny',
  category: 'image/preprocessors',
  inputs: {
    required: {
      image: { type: 'IMAGE' },
      low_threshold: { type: 'FLOAT', default: 0.4, min: 0.01, max: 0.99, step: 0.01 },
      high_threshold: { type: 'FLOAT', default: 0.8, min: 0.01, max: 0.99, step: 0.01 },
    },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ image, low_threshold, high_threshold }) {
    expectImage(image, 'Canny');
    if (image.shape[3] === 4) throw new Error("Canny: image has 4 channels (alpha); kornia's canny takes 1 or 3 channels");
    return [korniaCanny(image, low_threshold, high_threshold)];
  },
});

/** Registered under comfyui_controlnet_aux. */
export const auxNodes = [CannyEdgePreprocessor] as const;
/** ComfyUI core (comfy_extras.nodes_canny). */
export const coreNodes = [Canny] as const;
