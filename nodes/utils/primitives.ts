/**
 * ComfyUI's primitive nodes (comfy_extras/nodes_primitive.py): one widget, returned unchanged, so a
 * value can feed several inputs. Unlike the editor-only `PrimitiveNode`, these run on the server.
 */
import { defineNode } from '../../engine/registry/types.ts';

/** Python's sys.maxsize (2^63 − 1), ComfyUI's bound for both numeric primitives. */
const MAXSIZE = 9223372036854775807;
const CATEGORY = 'utils/primitive';

export const PrimitiveString = defineNode({
  name: 'PrimitiveString',
  displayName: 'String',
  category: CATEGORY,
  inputs: { required: { value: { type: 'STRING' } } },
  outputs: [{ type: 'STRING', name: 'STRING' }],
  run: ({ value }) => [value],
});

export const PrimitiveStringMultiline = defineNode({
  name: 'PrimitiveStringMultiline',
  displayName: 'String (Multiline)',
  category: CATEGORY,
  inputs: { required: { value: { type: 'STRING', multiline: true } } },
  outputs: [{ type: 'STRING', name: 'STRING' }],
  run: ({ value }) => [value],
});

export const PrimitiveInt = defineNode({
  name: 'PrimitiveInt',
  displayName: 'Int',
  category: CATEGORY,
  inputs: { required: { value: { type: 'INT', min: -MAXSIZE, max: MAXSIZE, controlAfterGenerate: true } } },
  outputs: [{ type: 'INT', name: 'INT' }],
  run: ({ value }) => [value],
});

export const PrimitiveFloat = defineNode({
  name: 'PrimitiveFloat',
  displayName: 'Float',
  category: CATEGORY,
  inputs: { required: { value: { type: 'FLOAT', min: -MAXSIZE, max: MAXSIZE, step: 0.1 } } },
  outputs: [{ type: 'FLOAT', name: 'FLOAT' }],
  run: ({ value }) => [value],
});

export const PrimitiveBoolean = defineNode({
  name: 'PrimitiveBoolean',
  displayName: 'Boolean',
  category: CATEGORY,
  inputs: { required: { value: { type: 'BOOLEAN' } } },
  outputs: [{ type: 'BOOLEAN', name: 'BOOLEAN' }],
  run: ({ value }) => [value],
});

export const nodes = [PrimitiveString, PrimitiveStringMultiline, PrimitiveInt, PrimitiveFloat, PrimitiveBoolean];
