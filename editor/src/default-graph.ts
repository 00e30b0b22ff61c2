import type { ObjectInfo } from '../../engine/registry/registry.ts';
import type { DocInput, DocNode, DocOutput, WorkflowDoc } from './doc.ts';

// The checkpoint ComfyUI's default graph names, kept when the server has no checkpoint at all.
const COMFYUI_DEFAULT_CKPT = 'v1-5-pruned-emaonly-fp16.safetensors';

const inp = (name: string, type: string, link: number): DocInput => ({ name, type, link });
const out = (name: string, links: number[], slot: number): DocOutput => ({ name, type: name, links, slot_index: slot });

function node(
  id: number,
  type: string,
  pos: [number, number],
  size: [number, number],
  order: number,
  inputs: DocInput[],
  outputs: DocOutput[],
  widgets_values: unknown[],
): DocNode {
  return { id, type, pos, size, flags: {}, order, mode: 0, inputs, outputs, properties: { 'Node name for S&R': type }, widgets_values };
}

/**
 * ComfyUI's default txt2img graph, which a first open shows: the same nodes, ids, links, layout and
 * values, with the server's first checkpoint in the loader.
 */
export function defaultGraph(info: ObjectInfo): WorkflowDoc {
  const ckpts = info.CheckpointLoaderSimple?.input.required?.ckpt_name?.[0];
  const ckpt = Array.isArray(ckpts) && ckpts.length ? String(ckpts[0]) : COMFYUI_DEFAULT_CKPT;
  return {
    last_node_id: 9,
    last_link_id: 9,
    nodes: [
      node(7, 'CLIPTextEncode', [413, 389], [425, 180], 3, [inp('clip', 'CLIP', 5)], [out('CONDITIONING', [6], 0)], ['text, watermark']),
      node(
        6,
        'CLIPTextEncode',
        [415, 186],
        [422, 164],
        2,
        [inp('clip', 'CLIP', 3)],
        [out('CONDITIONING', [4], 0)],
        ['beautiful scenery nature glass bottle landscape, , purple galaxy bottle,'],
      ),
      node(5, 'EmptyLatentImage', [473, 609], [315, 106], 0, [], [out('LATENT', [2], 0)], [512, 512, 1]),
      node(
        3,
        'KSampler',
        [863, 186],
        [315, 262],
        4,
        [
          inp('model', 'MODEL', 1),
          inp('positive', 'CONDITIONING', 4),
          inp('negative', 'CONDITIONING', 6),
          inp('latent_image', 'LATENT', 2),
        ],
        [out('LATENT', [7], 0)],
        [156680208700286, 'randomize', 20, 8, 'euler', 'normal', 1],
      ),
      node(8, 'VAEDecode', [1209, 188], [210, 46], 5, [inp('samples', 'LATENT', 7), inp('vae', 'VAE', 8)], [out('IMAGE', [9], 0)], []),
      node(9, 'SaveImage', [1451, 189], [210, 58], 6, [inp('images', 'IMAGE', 9)], [], ['ComfyUI']),
      node(
        4,
        'CheckpointLoaderSimple',
        [26, 474],
        [315, 98],
        1,
        [],
        [out('MODEL', [1], 0), out('CLIP', [3, 5], 1), out('VAE', [8], 2)],
        [ckpt],
      ),
    ],
    links: [
      [1, 4, 0, 3, 0, 'MODEL'],
      [2, 5, 0, 3, 3, 'LATENT'],
      [3, 4, 1, 6, 0, 'CLIP'],
      [4, 6, 0, 3, 1, 'CONDITIONING'],
      [5, 4, 1, 7, 0, 'CLIP'],
      [6, 7, 0, 3, 2, 'CONDITIONING'],
      [7, 3, 0, 8, 0, 'LATENT'],
      [8, 4, 2, 8, 1, 'VAE'],
      [9, 8, 0, 9, 0, 'IMAGE'],
    ],
    groups: [],
    config: {},
    extra: {},
    version: 0.4,
  };
}
