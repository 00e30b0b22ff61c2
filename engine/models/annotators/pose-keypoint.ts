import type { OpenposeJson } from '../../image/preprocess/dwpose-decode.ts';

/** POSE_KEYPOINT: one OpenPose JSON dict per image of the batch, as comfyui_controlnet_aux passes it. */
declare module '../../registry/sockets.ts' {
  interface SocketValueTypes {
    POSE_KEYPOINT: OpenposeJson[];
  }
}

export type { OpenposeJson };
