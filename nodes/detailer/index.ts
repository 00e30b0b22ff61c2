import type { AnyNodeDefinition } from '../../engine/registry/types.ts';
import { ADetailer } from './adetailer.ts';
import { DetailerForEach } from './detailer-for-each.ts';
import { FaceDetailer } from './face-detailer.ts';

/** The Impact Pack's detailers (issue 16), listed under its python_module. */
export const impactDetailerNodes: readonly AnyNodeDefinition[] = [DetailerForEach, FaceDetailer];

/** A1111 ADetailer as a node (Weft's own; ComfyUI has no such class). */
export const adetailerNodes: readonly AnyNodeDefinition[] = [ADetailer];
