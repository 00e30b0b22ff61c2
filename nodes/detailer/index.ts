import type { AnyNodeDefinition } from '../../engine/registry/types.ts';
import { DetailerForEach } from './detailer-for-each.ts';
import { FaceDetailer } from './face-detailer.ts';

/** The Impact Pack's detailers (issue 16), listed under its python_module. */
export const impactDetailerNodes: readonly AnyNodeDefinition[] = [DetailerForEach, FaceDetailer];
