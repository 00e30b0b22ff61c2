import { UNION_CONTROLNET_TYPES } from '../../engine/models/controlnet/union.ts';
import { defineNode } from '../../engine/registry/types.ts';

/**
 * ComfyUI's `SetUnionControlNetType` (comfy_extras/nodes_controlnet.py): a copy of the CONTROL_NET
 * with the Union ControlNet's control type set ("auto" = none). Like ComfyUI's, it takes any
 * CONTROL_NET; a ControlNet that is not a Union, or a T2I-Adapter, ignores the type.
 */
export const SetUnionControlNetType = defineNode({
  name: 'SetUnionControlNetType',
  displayName: 'SetUnionControlNetType',
  category: 'conditioning/controlnet',
  searchAliases: ['union controlnet', 'controlnet union', 'control type', 'promax'],
  inputs: {
    required: {
      control_net: { type: 'CONTROL_NET' },
      type: { type: 'COMBO', options: ['auto', ...UNION_CONTROLNET_TYPES] },
    },
  },
  outputs: [{ type: 'CONTROL_NET', name: 'CONTROL_NET' }],
  run({ control_net, type }) {
    const index = (UNION_CONTROLNET_TYPES as readonly string[]).indexOf(type);
    if (control_net.kind !== 'controlnet') return [control_net];
    return [control_net.withControlType(index >= 0 ? [index] : [])];
  },
});

export const nodes = [SetUnionControlNetType];
