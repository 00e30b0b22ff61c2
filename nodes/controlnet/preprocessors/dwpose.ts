import { removePad, resizeImageWithPad } from '../../../engine/image/preprocess/aux-resize.ts';
import { encodePoses, type OpenposeJson } from '../../../engine/image/preprocess/dwpose-decode.ts';
import { hwc3 } from '../../../engine/image/preprocess/mat.ts';
import { drawPoses, type Pose } from '../../../engine/image/preprocess/openpose-draw.ts';
import { DwposeDetector } from '../../../engine/models/annotators/dwpose.ts';
import { findAnnotator } from '../../../engine/models/annotators/locate.ts';
import '../../../engine/models/annotators/pose-keypoint.ts';
import type { NodeContext } from '../../../engine/registry/context.ts';
import { defineNode } from '../../../engine/registry/types.ts';
import { modelManager } from '../../model/services.ts';
import { annotatorCall, CATEGORY, detectResolution, resolutionInput } from './annotator-call.ts';

/**
 * comfyui_controlnet_aux's DWPreprocessor with the community's ONNX files (yolox_l.onnx +
 * dw-ll_ucoco_384.onnx, looked up in models/annotators/ or the aux package's ckpts layout). The
 * TorchScript choices name the same networks; Weft runs their ONNX exports in their place. YOLO-NAS
 * detectors are not supported.
 */

const BBOX = ['None', 'yolox_l.torchscript.pt', 'yolox_l.onnx', 'yolo_nas_l_fp16.onnx', 'yolo_nas_m_fp16.onnx', 'yolo_nas_s_fp16.onnx'];
const POSE = ['dw-ll_ucoco_384_bs5.torchscript.pt', 'dw-ll_ucoco_384.onnx', 'dw-ll_ucoco.onnx'];
const ENABLE = ['enable', 'disable'];

function detectorFile(name: string): { file: string; repos: string[] } | undefined {
  if (name === 'None') return undefined;
  if (name === 'yolox_l.onnx' || name === 'yolox_l.torchscript.pt')
    return { file: 'yolox_l.onnx', repos: ['yzd-v/DWPose', 'hr16/yolox-onnx'] };
  throw new Error(`DWPreprocessor: bbox_detector ${name} (YOLO-NAS) is not supported; choose yolox_l.onnx or None`);
}

function poseFile(name: string): { file: string; repos: string[] } {
  if (name === 'dw-ll_ucoco.onnx') return { file: name, repos: ['hr16/UnJIT-DWPose'] };
  if (!POSE.includes(name)) throw new Error(`DWPreprocessor: unknown pose_estimator ${name} (choose one of ${POSE.join(', ')})`);
  return { file: 'dw-ll_ucoco_384.onnx', repos: ['yzd-v/DWPose', 'hr16/UnJIT-DWPose'] };
}

function detector(ctx: NodeContext, bbox: string, pose: string): DwposeDetector {
  const runtime = modelManager(ctx).runtime;
  const d = detectorFile(bbox);
  const p = poseFile(pose);
  const detPath = d && findAnnotator(ctx.paths, d.file, d.repos);
  const posePath = findAnnotator(ctx.paths, p.file, p.repos);
  return new DwposeDetector(detPath ? { run: runtime.fileRunner(detPath), file: detPath } : undefined, {
    run: runtime.fileRunner(posePath),
    file: posePath,
  });
}

export const DWPreprocessor = defineNode({
  name: 'DWPreprocessor',
  displayName: 'DWPose Estimator',
  category: CATEGORY.pose,
  inputs: {
    required: { image: { type: 'IMAGE' } },
    optional: {
      detect_hand: { type: 'COMBO', options: ENABLE, default: 'enable' },
      detect_body: { type: 'COMBO', options: ENABLE, default: 'enable' },
      detect_face: { type: 'COMBO', options: ENABLE, default: 'enable' },
      resolution: resolutionInput,
      bbox_detector: { type: 'COMBO', options: BBOX, default: 'yolox_l.onnx' },
      pose_estimator: { type: 'COMBO', options: POSE, default: 'dw-ll_ucoco_384_bs5.torchscript.pt' },
      scale_stick_for_xinsr_cn: { type: 'COMBO', options: ['disable', 'enable'], default: 'disable' },
    },
  },
  outputs: [
    { type: 'IMAGE', name: 'IMAGE' },
    { type: 'POSE_KEYPOINT', name: 'POSE_KEYPOINT' },
  ],
  async run(args, ctx) {
    const res = detectResolution(args.resolution);
    const hand = (args.detect_hand ?? 'enable') === 'enable';
    const body = (args.detect_body ?? 'enable') === 'enable';
    const face = (args.detect_face ?? 'enable') === 'enable';
    const xinsr = args.scale_stick_for_xinsr_cn === 'enable';
    const det = detector(ctx, args.bbox_detector ?? 'yolox_l.onnx', args.pose_estimator ?? 'dw-ll_ucoco_384.onnx');
    const dicts: OpenposeJson[] = [];
    const image = await annotatorCall('DWPreprocessor', args.image, ctx, async (m) => {
      const img = hwc3(m);
      const poses = await det.detect(img);
      const filtered: Pose[] = poses.map((p) => ({
        body: body ? p.body : new Array<null>(18).fill(null),
        leftHand: hand ? p.leftHand : null,
        rightHand: hand ? p.rightHand : null,
        face: face ? p.face : null,
      }));
      dicts.push(encodePoses(filtered, img.h, img.w));
      const canvas = drawPoses(poses, img.h, img.w, body, hand, face, xinsr);
      const padded = resizeImageWithPad(canvas, res);
      return hwc3(removePad(padded, padded.image));
    });
    return { ui: { openpose_json: [JSON.stringify(dicts, null, 4)] }, result: [image, dicts] };
  },
});

export const nodes = [DWPreprocessor] as const;
