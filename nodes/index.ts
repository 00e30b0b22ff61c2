import { NodeRegistry } from '../engine/registry/registry.ts';
import type { AnyNodeDefinition } from '../engine/registry/types.ts';
import { nodes as loadImage } from './image/load-image.ts';
import { nodes as saveImage } from './image/save-image.ts';
import { nodes as transform } from './image/transform.ts';
import { nodes as masks } from './mask/masks.ts';
import { nodes as latentFiles } from './latent/latent-file.ts';

/** Every built-in node family, with the python_module name ComfyUI shows for its counterparts. */
export const BUILTIN_FAMILIES: [string, readonly AnyNodeDefinition[]][] = [
  ['nodes', loadImage],
  ['nodes', saveImage],
  ['nodes', transform],
  ['comfy_extras.nodes_mask', masks],
  ['nodes', latentFiles],
];

export function createBuiltinRegistry(): NodeRegistry {
  const registry = new NodeRegistry();
  for (const [module, defs] of BUILTIN_FAMILIES) registry.registerAll(defs, module);
  return registry;
}
