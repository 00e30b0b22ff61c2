import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Executor } from '../../engine/executor/executor.ts';
import { convertWorkflowToPrompt } from '../../engine/graph/convert.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { defineNode } from '../../engine/registry/types.ts';
import { createBuiltinRegistry } from '../../nodes/index.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-prim-'));
const paths = new FolderPaths({ baseDir: tmp, modelsDir: tmp });
const registry = createBuiltinRegistry();
// An output node that shows what it was given, so a prompt can be checked end to end.
registry.registerAll(
  [
    defineNode({
      name: 'TestShowValues',
      inputs: {
        required: {
          i: { type: 'INT', forceInput: true },
          f: { type: 'FLOAT', forceInput: true },
          s: { type: 'STRING', forceInput: true },
          m: { type: 'STRING', forceInput: true },
          b: { type: 'BOOLEAN', forceInput: true },
        },
      },
      outputs: [],
      outputNode: true,
      run: (v) => ({ ui: { values: [v.i, v.f, v.s, v.m, v.b] } }),
    }),
  ],
  'tests',
);
const info = registry.objectInfo({ paths });

describe("ComfyUI's primitive nodes (comfy_extras/nodes_primitive.py)", () => {
  it('declare one `value` widget each, as ComfyUI does, in utils/primitive', () => {
    const MAXSIZE = 9223372036854775807;
    expect(info.PrimitiveInt.input.required.value).toEqual([
      'INT',
      { min: -MAXSIZE, max: 0xffffffffffffffff, control_after_generate: true },
    ]);
    expect(info.PrimitiveFloat.input.required.value).toEqual(['FLOAT', { min: -MAXSIZE, max: MAXSIZE, step: 0.1 }]);
    expect(info.PrimitiveString.input.required.value).toEqual(['STRING', {}]);
    expect(info.PrimitiveStringMultiline.input.required.value).toEqual(['STRING', { multiline: true }]);
    expect(info.PrimitiveBoolean.input.required.value).toEqual(['BOOLEAN', {}]);
    const names = ['PrimitiveInt', 'PrimitiveFloat', 'PrimitiveString', 'PrimitiveStringMultiline', 'PrimitiveBoolean'];
    expect(names.map((n) => info[n].output)).toEqual([['INT'], ['FLOAT'], ['STRING'], ['STRING'], ['BOOLEAN']]);
    expect(names.map((n) => info[n].display_name)).toEqual(['Int', 'Float', 'String', 'String (Multiline)', 'Boolean']);
    expect(new Set(names.map((n) => info[n].category))).toEqual(new Set(['utils/primitive']));
    expect(new Set(names.map((n) => info[n].python_module))).toEqual(new Set(['comfy_extras.nodes_primitive']));
  });

  it('pass their value on unchanged, from a saved UI workflow (the seed control value is not sent)', async () => {
    const node = (id: number, type: string, wv: unknown[], links: number[]) => ({
      id,
      type,
      mode: 0,
      inputs: [],
      outputs: [{ name: 'out', type: '*', links }],
      widgets_values: wv,
    });
    const wf = {
      nodes: [
        node(1, 'PrimitiveInt', [-42, 'fixed'], [1]),
        node(2, 'PrimitiveFloat', [0.25], [2]),
        node(3, 'PrimitiveString', ['one line'], [3]),
        node(4, 'PrimitiveStringMultiline', ['two\nlines'], [4]),
        node(5, 'PrimitiveBoolean', [true], [5]),
        { id: 6, type: 'Note', mode: 0, inputs: [], outputs: [], widgets_values: ['not sent'] },
        { id: 7, type: 'MarkdownNote', mode: 0, inputs: [], outputs: [], widgets_values: ['# not sent'] },
        {
          id: 9,
          type: 'TestShowValues',
          mode: 0,
          inputs: ['i', 'f', 's', 'm', 'b'].map((name, k) => ({ name, type: '*', link: k + 1 })),
          outputs: [],
        },
      ],
      links: [1, 2, 3, 4, 5].map((k) => [k, k, 0, 9, k - 1, '*']),
    };
    const r = convertWorkflowToPrompt(wf, info);
    expect(r.missing).toEqual([]);
    expect(Object.keys(r.prompt).sort()).toEqual(['1', '2', '3', '4', '5', '9']);
    expect(r.prompt['1'].inputs).toEqual({ value: -42 });
    const result = await new Executor(registry, { paths }).execute(r.prompt, { promptId: 'p' });
    expect(result.status).toBe('success');
    expect(result.outputs['9']).toEqual({ values: [-42, 0.25, 'one line', 'two\nlines', true] });
  });
});
