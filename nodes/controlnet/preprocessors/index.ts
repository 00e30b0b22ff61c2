import type { AnyNodeDefinition } from '../../../engine/registry/types.ts';
import { auxNodes as canny, coreNodes as coreCanny } from './canny.ts';
import { nodes as depth } from './depth.ts';
import { nodes as dwpose } from './dwpose.ts';
import { nodes as hed } from './hed.ts';
import { nodes as lineart } from './lineart.ts';
import { nodes as opencvDetectors } from './opencv-detectors.ts';
import { nodes as shuffle } from './shuffle.ts';

/**
 * The ControlNet preprocessors. Those of comfyui_controlnet_aux register under the module name ComfyUI's
 * /object_info gives a custom-node package (`custom_nodes.<folder>`), so shared workflows find them
 * where they expect; ComfyUI's own Canny under comfy_extras.nodes_canny.
 */
export const AUX_MODULE = 'custom_nodes.comfyui_controlnet_aux';

export const auxPreprocessorNodes: readonly AnyNodeDefinition[] = [
  ...canny,
  ...opencvDetectors,
  ...shuffle,
  ...dwpose,
  ...depth,
  ...hed,
  ...lineart,
];
export const corePreprocessorNodes: readonly AnyNodeDefinition[] = [...coreCanny];
