import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { DuplicateNodeError, NodeRegistry } from '../../engine/registry/registry.ts';
import { socketTypesMatch } from '../../engine/registry/sockets.ts';
import { defineNode } from '../../engine/registry/types.ts';

const env = { paths: new FolderPaths({ baseDir: os.tmpdir() }) };

describe('object_info', () => {
  it("renders a definition in ComfyUI's exact JSON shape", () => {
    const r = new NodeRegistry();
    r.register(
      defineNode({
        name: 'KSamplerLike',
        displayName: 'KSampler (like)',
        category: 'sampling',
        inputs: {
          required: {
            model: { type: 'MODEL' },
            seed: { type: 'INT', default: 0, min: 0, max: 2 ** 64 - 1, controlAfterGenerate: true },
            cfg: { type: 'FLOAT', default: 8, min: 0, max: 100, step: 0.1, round: 0.01 },
            sampler_name: { type: 'COMBO', options: ['euler', 'heun'] },
            files: { type: 'COMBO', options: () => ['a.safetensors'] },
            text: { type: 'STRING', multiline: true, dynamicPrompts: true },
            flag: { type: 'BOOLEAN', default: true, labelOn: 'yes' },
          },
          optional: { mask: { type: 'MASK' } },
          hidden: { prompt: 'PROMPT', unique_id: 'UNIQUE_ID' },
        },
        outputs: [{ type: 'LATENT' }, { type: 'INT', name: 'count', isList: true }],
        run: () => [{ samples: { shape: [1], data: new Float32Array(1) } }, [1]],
      }),
    );
    const info = r.objectInfo(env).KSamplerLike;
    expect(info).toEqual({
      input: {
        required: {
          model: ['MODEL'],
          seed: ['INT', { default: 0, min: 0, max: 0xffffffffffffffff, control_after_generate: true }],
          cfg: ['FLOAT', { default: 8, min: 0, max: 100, step: 0.1, round: 0.01 }],
          sampler_name: [['euler', 'heun']],
          files: [['a.safetensors']],
          text: ['STRING', { multiline: true, dynamicPrompts: true }],
          flag: ['BOOLEAN', { default: true, label_on: 'yes' }],
        },
        optional: { mask: ['MASK'] },
        hidden: { prompt: 'PROMPT', unique_id: 'UNIQUE_ID' },
      },
      input_order: {
        required: ['model', 'seed', 'cfg', 'sampler_name', 'files', 'text', 'flag'],
        optional: ['mask'],
        hidden: ['prompt', 'unique_id'],
      },
      is_input_list: false,
      output: ['LATENT', 'INT'],
      output_is_list: [false, true],
      output_name: ['LATENT', 'count'],
      name: 'KSamplerLike',
      display_name: 'KSampler (like)',
      description: '',
      python_module: 'nodes',
      category: 'sampling',
      output_node: false,
      has_intermediate_output: false,
      search_aliases: [],
    });
  });

  it('refuses duplicate class names and definitions without a run function', () => {
    const r = new NodeRegistry();
    const d = defineNode({ name: 'A', outputs: [], run: () => [] });
    r.register(d);
    expect(() => r.register(d, 'custom_nodes.x')).toThrow(DuplicateNodeError);
    expect(() => r.register({ name: 'B', outputs: [] } as never)).toThrow(/has no run function/);
  });
});

describe('socket compatibility', () => {
  it.each([
    ['IMAGE', 'IMAGE', true],
    ['IMAGE', 'MASK', false],
    ['*', 'MODEL', true],
    ['LATENT', '*', true],
    ['IMAGE,MASK', 'MASK', true],
    ['STRING', 'COMBO', true],
    ['INT', 'FLOAT', false],
  ])('%s → %s is %s', (a, b, ok) => {
    expect(socketTypesMatch(a, b)).toBe(ok);
  });
});
