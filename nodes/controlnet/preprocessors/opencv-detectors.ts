import { tensor, type ImageTensor, type MaskTensor } from '../../../engine/core/tensor.ts';
import {
  binaryDetector,
  colorDetector,
  lineartStandardDetector,
  recolorDetector,
  scribbleXdogDetector,
  tileDetector,
} from '../../../engine/image/preprocess/detectors.ts';
import { resizeNCHW } from '../../../engine/image/resize.ts';
import { defineNode } from '../../../engine/registry/types.ts';
import { annotatorCall, CATEGORY, detectResolution, expectImage, resolutionInput } from './annotator-call.ts';

/** comfyui_controlnet_aux's detectors that need no network, with its names, inputs and categories. */

const image = { type: 'IMAGE' } as const;
const out = [{ type: 'IMAGE', name: 'IMAGE' }] as const;

export const BinaryPreprocessor = defineNode({
  name: 'BinaryPreprocessor',
  displayName: 'Binary Lines',
  category: CATEGORY.lines,
  inputs: {
    required: { image },
    optional: { bin_threshold: { type: 'INT', default: 100, min: 0, max: 255, step: 1 }, resolution: resolutionInput },
  },
  outputs: out,
  async run({ image, bin_threshold, resolution }, ctx) {
    const res = detectResolution(resolution);
    return [await annotatorCall('BinaryPreprocessor', image, ctx, (m) => binaryDetector(m, bin_threshold ?? 100, res))];
  },
});

const gammaInput = { type: 'FLOAT', default: 1.0, min: 0.1, max: 2.0, step: 0.01 } as const;

export const ImageLuminanceDetector = defineNode({
  name: 'ImageLuminanceDetector',
  displayName: 'Image Luminance',
  category: CATEGORY.recolor,
  inputs: { required: { image }, optional: { gamma_correction: gammaInput, resolution: resolutionInput } },
  outputs: out,
  async run({ image, gamma_correction, resolution }, ctx) {
    const res = detectResolution(resolution);
    return [await annotatorCall('ImageLuminanceDetector', image, ctx, (m) => recolorDetector(m, 'luminance', gamma_correction ?? 1, res))];
  },
});

export const ImageIntensityDetector = defineNode({
  name: 'ImageIntensityDetector',
  displayName: 'Image Intensity',
  category: CATEGORY.recolor,
  inputs: { required: { image }, optional: { gamma_correction: gammaInput, resolution: resolutionInput } },
  outputs: out,
  async run({ image, gamma_correction, resolution }, ctx) {
    const res = detectResolution(resolution);
    return [await annotatorCall('ImageIntensityDetector', image, ctx, (m) => recolorDetector(m, 'intensity', gamma_correction ?? 1, res))];
  },
});

export const ColorPreprocessor = defineNode({
  name: 'ColorPreprocessor',
  displayName: 'Color Pallete',
  category: CATEGORY.t2i,
  inputs: { required: { image }, optional: { resolution: resolutionInput } },
  outputs: out,
  async run({ image, resolution }, ctx) {
    const res = detectResolution(resolution);
    return [await annotatorCall('ColorPreprocessor', image, ctx, (m) => colorDetector(m, res))];
  },
});

export const TilePreprocessor = defineNode({
  name: 'TilePreprocessor',
  displayName: 'Tile',
  category: CATEGORY.tile,
  inputs: {
    required: { image },
    optional: { pyrUp_iters: { type: 'INT', default: 3, min: 1, max: 10, step: 1 }, resolution: resolutionInput },
  },
  outputs: out,
  async run({ image, pyrUp_iters }, ctx) {
    return [await annotatorCall('TilePreprocessor', image, ctx, (m) => tileDetector(m, pyrUp_iters ?? 3))];
  },
});

export const Scribble_XDoG_Preprocessor = defineNode({
  name: 'Scribble_XDoG_Preprocessor',
  displayName: 'Scribble XDoG Lines',
  category: CATEGORY.lines,
  inputs: {
    required: { image },
    optional: { threshold: { type: 'INT', default: 32, min: 1, max: 64, step: 1 }, resolution: resolutionInput },
  },
  outputs: out,
  async run({ image, threshold, resolution }, ctx) {
    const res = detectResolution(resolution);
    return [await annotatorCall('Scribble_XDoG_Preprocessor', image, ctx, (m) => scribbleXdogDetector(m, threshold ?? 32, res))];
  },
});

export const LineartStandardPreprocessor = defineNode({
  name: 'LineartStandardPreprocessor',
  displayName: 'Standard Lineart',
  category: CATEGORY.lines,
  inputs: {
    required: { image },
    optional: {
      guassian_sigma: { type: 'FLOAT', default: 6.0, min: 0, max: 100.0, step: 0.01 },
      intensity_threshold: { type: 'INT', default: 8, min: 0, max: 16, step: 1 },
      resolution: resolutionInput,
    },
  },
  outputs: out,
  async run({ image, guassian_sigma, intensity_threshold, resolution }, ctx) {
    const res = detectResolution(resolution);
    return [
      await annotatorCall('LineartStandardPreprocessor', image, ctx, (m) =>
        lineartStandardDetector(m, guassian_sigma ?? 6, intensity_threshold ?? 8, res),
      ),
    ];
  },
});

/**
 * InpaintPreprocessor: the mask resized to the image (bilinear, as torch's interpolate), pixels where it
 * is above 0.5 set to -1 (ControlNet inpaint's "masked") or to 0 for xinsir's ControlNet.
 */
export const InpaintPreprocessor = defineNode({
  name: 'InpaintPreprocessor',
  displayName: 'Inpaint Preprocessor',
  category: CATEGORY.others,
  inputs: {
    required: { image, mask: { type: 'MASK' } },
    optional: { black_pixel_for_xinsir_cn: { type: 'BOOLEAN', default: false } },
  },
  outputs: out,
  run({ image, mask, black_pixel_for_xinsir_cn }) {
    expectImage(image, 'InpaintPreprocessor');
    const [b, h, w, c] = image.shape;
    const m: MaskTensor = mask;
    const mh = m.shape[m.shape.length - 2];
    const mw = m.shape[m.shape.length - 1];
    if (m.shape.length < 2 || !(mh > 0 && mw > 0)) throw new Error(`InpaintPreprocessor: mask has shape [${m.shape.join(', ')}]`);
    const mb = m.data.length / (mh * mw);
    if (mb !== b && mb !== 1) throw new Error(`InpaintPreprocessor: mask batch ${mb} does not match image batch ${b}`);
    const resized = mh === h && mw === w ? m.data : resizeNCHW(tensor([mb, 1, mh, mw], m.data), h, w, 'bilinear').data;
    const value = black_pixel_for_xinsir_cn ? 0 : -1;
    const o: ImageTensor = tensor([b, h, w, c], new Float32Array(image.data));
    for (let n = 0; n < b; n++) {
      const mo = (mb === 1 ? 0 : n) * h * w;
      for (let i = 0; i < h * w; i++) if (resized[mo + i] > 0.5) o.data.fill(value, (n * h * w + i) * c, (n * h * w + i + 1) * c);
    }
    return [o];
  },
});

export const nodes = [
  BinaryPreprocessor,
  ImageLuminanceDetector,
  ImageIntensityDetector,
  ColorPreprocessor,
  TilePreprocessor,
  Scribble_XDoG_Preprocessor,
  LineartStandardPreprocessor,
  InpaintPreprocessor,
] as const;
