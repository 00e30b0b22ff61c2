/**
 * Writes the ControlNet example workflows (workflows/controlnet-*.json, ComfyUI UI format, laid out by
 * the editor's converter) and their hint inputs: input/example-depth.png (a depth map: near is bright)
 * and input/example-pose.png (an OpenPose body skeleton in OpenPose's colours), both drawn here,
 * deterministically. Run: npx tsx scripts/make-controlnet-workflows.ts
 */
import sharp from 'sharp';
import { drawPoses } from '../engine/image/preprocess/openpose-draw.ts';
import {
  checkpointLoader,
  clipText,
  emptyLatent,
  ksampler,
  NEGATIVE,
  saveImage,
  vaeDecode,
  writeWorkflows,
  type Link,
} from './workflow-builders.ts';

const CKPT = 'weft-tiny-sd1.safetensors';
const CN = 'weft-tiny-controlnet.safetensors';

const common = (positive: string, seed: number) => ({
  '4': checkpointLoader(CKPT),
  '6': clipText(positive),
  '7': clipText(NEGATIVE),
  '5': emptyLatent(256, 256),
  '8': vaeDecode(['3', 0]),
  _seed: seed,
});
const sampler = (seed: number, positive: Link, negative: Link) => ksampler({ seed, steps: 20, positive, negative });
const applyAdvanced = (
  image: [string, number],
  net: string,
  strength: number,
  start: number,
  end: number,
  positive: [string, number],
  negative: [string, number],
) => ({
  class_type: 'ControlNetApplyAdvanced',
  inputs: { positive, negative, control_net: [net, 0], image, strength, start_percent: start, end_percent: end },
});

const examples: Record<string, Record<string, unknown>> = {
  'controlnet-canny': {
    ...common('a watercolour of a lighthouse on a cliff', 31),
    '10': { class_type: 'LoadImage', inputs: { image: 'example.png' } },
    '11': { class_type: 'CannyEdgePreprocessor', inputs: { image: ['10', 0], low_threshold: 100, high_threshold: 200, resolution: 256 } },
    '12': { class_type: 'ControlNetLoader', inputs: { control_net_name: CN } },
    '13': applyAdvanced(['11', 0], '12', 1, 0, 1, ['6', 0], ['7', 0]),
    '3': sampler(31, ['13', 0], ['13', 1]),
    '9': saveImage('weft-controlnet-canny'),
  },
  'controlnet-multi': {
    ...common('a stone bridge over a river, autumn', 32),
    '10': { class_type: 'LoadImage', inputs: { image: 'example.png' } },
    '11': { class_type: 'CannyEdgePreprocessor', inputs: { image: ['10', 0], low_threshold: 100, high_threshold: 200, resolution: 256 } },
    '12': { class_type: 'ControlNetLoader', inputs: { control_net_name: CN } },
    // Canny for the first 60% of the schedule: the layout; depth from 20% to the end: the volumes.
    '13': applyAdvanced(['11', 0], '12', 0.8, 0, 0.6, ['6', 0], ['7', 0]),
    '14': { class_type: 'LoadImage', inputs: { image: 'example-depth.png' } },
    '15': { class_type: 'ControlNetLoader', inputs: { control_net_name: CN } },
    '16': applyAdvanced(['14', 0], '15', 0.6, 0.2, 1, ['13', 0], ['13', 1]),
    '3': sampler(32, ['16', 0], ['16', 1]),
    '9': saveImage('weft-controlnet-multi'),
  },
  'controlnet-pose': {
    ...common('a dancer on a stage, spotlight', 33),
    '10': { class_type: 'LoadImage', inputs: { image: 'example-pose.png' } },
    '12': { class_type: 'ControlNetLoader', inputs: { control_net_name: CN } },
    '13': {
      class_type: 'ControlNetApplyA1111',
      inputs: {
        positive: ['6', 0],
        negative: ['7', 0],
        control_net: ['12', 0],
        image: ['10', 0],
        weight: 1,
        guidance_start: 0,
        guidance_end: 1,
        control_mode: 'ControlNet is more important',
        resize_mode: 'Crop and Resize',
      },
    },
    '3': sampler(33, ['13', 0], ['13', 1]),
    '9': saveImage('weft-controlnet-pose'),
  },
};

writeWorkflows(examples);

const S = 256;
const png = (data: Uint8Array, file: string): Promise<unknown> =>
  sharp(Buffer.from(data), { raw: { width: S, height: S, channels: 3 } })
    .png()
    .toFile(file);

// Depth: a floor receding to the top (bright = near) with a sphere standing on it.
const depth = new Uint8Array(S * S * 3);
for (let y = 0; y < S; y++)
  for (let x = 0; x < S; x++) {
    let v = 40 + (170 * y) / (S - 1);
    const dx = (x - 128) / 60;
    const dy = (y - 120) / 60;
    const r2 = dx * dx + dy * dy;
    if (r2 < 1) v = Math.max(v, 150 + 105 * Math.sqrt(1 - r2));
    depth.fill(Math.round(v), (y * S + x) * 3, (y * S + x) * 3 + 3);
  }
await png(depth, 'input/example-depth.png');
console.log('input/example-depth.png');

// Pose: OpenPose's 18 body keypoints (pixels on the 256² canvas).
const K: [number, number][] = [
  [128, 52],
  [128, 84],
  [100, 86],
  [88, 122],
  [82, 156],
  [156, 86],
  [170, 120],
  [182, 150],
  [112, 150],
  [108, 196],
  [104, 238],
  [144, 150],
  [150, 196],
  [156, 238],
  [122, 46],
  [134, 46],
  [114, 50],
  [142, 50],
];
// Drawn by the OpenPose renderer the DWPose preprocessor uses (byte-exact against the aux package's OpenCV drawing).
const pose = drawPoses(
  [{ body: K.map(([x, y]) => ({ x, y })), leftHand: null, rightHand: null, face: null }],
  S,
  S,
  true,
  false,
  false,
).data;
await png(pose, 'input/example-pose.png');
console.log('input/example-pose.png');
