import type { AnyNodeDefinition } from '../../engine/registry/types.ts';
import { BboxDetectorSEGS, ImpactSimpleDetectorSEGS, SegmDetectorSEGS } from './detectors.ts';
import { UltralyticsDetectorProvider } from './provider.ts';
import { nodes as segsNodes } from './segs-nodes.ts';

/** The Impact Pack's detection and SEGS nodes (issue 16), listed under its python_module. */
export const impactDetectNodes: readonly AnyNodeDefinition[] = [BboxDetectorSEGS, SegmDetectorSEGS, ImpactSimpleDetectorSEGS, ...segsNodes];

/** The Impact Subpack's provider (UltralyticsDetectorProvider lives there). */
export const impactSubpackNodes: readonly AnyNodeDefinition[] = [UltralyticsDetectorProvider];
