import type { Segs, SegsDetector } from '../../image/segs.ts';

/**
 * The Impact Pack's socket types: SEGS carries detections, BBOX_DETECTOR and SEGM_DETECTOR a loaded
 * detection model (a SEGM_DETECTOR's segments carry the model's masks, a BBOX_DETECTOR's are boxes).
 */
declare module '../../registry/sockets.ts' {
  interface SocketValueTypes {
    SEGS: Segs;
    BBOX_DETECTOR: SegsDetector;
    SEGM_DETECTOR: SegsDetector;
  }
}

export type { Segs, SegsDetector };
