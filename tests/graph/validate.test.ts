import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { formatNodeErrors, validatePrompt } from '../../engine/graph/validate.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { NodeRegistry } from '../../engine/registry/registry.ts';
import { defineNode } from '../../engine/registry/types.ts';

const env = { paths: new FolderPaths({ baseDir: os.tmpdir() }) };
const r = new NodeRegistry();
r.registerAll([
  defineNode({
    name: 'Num',
    inputs: { required: { v: { type: 'INT', default: 1, min: 1, max: 10 } } },
    outputs: [{ type: 'INT' }],
    run: ({ v }) => [v],
  }),
  defineNode({
    name: 'Img',
    inputs: { required: { mode: { type: 'COMBO', options: ['a', 'b'] } } },
    outputs: [{ type: 'IMAGE' }],
    run: () => [{ shape: [1], data: new Float32Array(1) }],
  }),
  defineNode({
    name: 'Use',
    inputs: {
      required: {
        image: { type: 'IMAGE' },
        f: { type: 'FLOAT', default: 0, min: -1, max: 1 },
        s: { type: 'STRING' },
        b: { type: 'BOOLEAN' },
      },
      optional: { n: { type: 'INT' } },
    },
    outputs: [{ type: 'IMAGE' }],
    run: ({ image }) => [image],
  }),
  defineNode({ name: 'Out', inputs: { required: { x: { type: '*' } } }, outputs: [], outputNode: true, run: () => ({ ui: {} }) }),
  defineNode({
    name: 'Seed',
    inputs: { required: { seed: { type: 'INT', min: 0, max: 2 ** 64 - 1 } } },
    outputs: [{ type: 'INT' }],
    run: ({ seed }) => [seed],
  }),
  defineNode({
    name: 'Even',
    inputs: { required: { v: { type: 'INT' } } },
    outputs: [{ type: 'INT' }],
    validateInputs: (i) => ((i.v as number) % 2 === 0 ? true : 'must be even'),
    run: ({ v }) => [v],
  }),
]);

const v = (p: unknown) => validatePrompt(p, r, env);

describe('validation', () => {
  it('accepts a good prompt and coerces constants as ComfyUI does', async () => {
    const res = await v({
      '1': { class_type: 'Img', inputs: { mode: 'a' } },
      '2': { class_type: 'Use', inputs: { image: ['1', 0], f: '0.5', s: 3, b: 'false' } },
      '3': { class_type: 'Out', inputs: { x: ['2', 0] } },
    });
    expect(res.ok).toBe(true);
    expect(res.node_errors).toEqual({});
    expect(res.outputs).toEqual(['3']);
    expect(res.prompt['2'].inputs).toMatchObject({ f: 0.5, s: '3', b: true });
  });

  it('reports every problem of every node at once', async () => {
    const res = await v({
      '1': { class_type: 'Num', inputs: { v: 0 } },
      '2': { class_type: 'Num', inputs: { v: 11 } },
      '3': { class_type: 'Img', inputs: { mode: 'z' } },
      '4': { class_type: 'Use', inputs: { image: ['1', 0], f: 'abc', s: 'x', b: true, n: ['2', 0] } },
      '5': { class_type: 'Out', inputs: { x: ['4', 0] } },
      '6': { class_type: 'Use', inputs: { image: ['3', 0], s: 'x', b: true, f: 0 } },
      '7': { class_type: 'Out', inputs: { x: ['6', 0] } },
      '8': { class_type: 'Out', inputs: { x: ['99', 0] } },
      '9': { class_type: 'Out', inputs: { x: ['3', 5] } },
      '10': { class_type: 'Out', inputs: { x: ['3', 0, 1] } },
      '11': { class_type: 'Out', inputs: {} },
      '12': { class_type: 'Even', inputs: { v: 3 } },
      '13': { class_type: 'Out', inputs: { x: ['12', 0] } },
    });
    expect(res.ok).toBe(false);
    expect(res.error?.type).toBe('prompt_outputs_failed_validation');
    const kinds = (id: string) => res.node_errors[id]?.errors.map((e) => e.type);
    // Node 1 (v=0 < min) is behind a type mismatch, so, as in ComfyUI, it is never reached.
    expect(kinds('1')).toBeUndefined();
    expect(kinds('4')).toEqual(['return_type_mismatch', 'invalid_input_type']);
    expect(kinds('2')).toEqual(['value_bigger_than_max']);
    expect(kinds('3')).toEqual(['value_not_in_list']);
    expect(res.node_errors['3'].errors[0].details).toBe("mode: 'z' not in ['a', 'b']");
    expect(kinds('8')).toEqual(['linked_node_missing']);
    expect(kinds('9')).toEqual(['bad_linked_input']);
    expect(kinds('10')).toEqual(['bad_linked_input']);
    expect(kinds('11')).toEqual(['required_input_missing']);
    expect(kinds('12')).toEqual(['custom_validation_failed']);
    expect(res.node_errors['12'].errors[0].details).toBe('v - must be even');
    expect(res.node_errors['3'].dependent_outputs).toEqual(['7', '9']);
    expect(res.node_errors['4'].errors[0].extra_info).toMatchObject({ input_name: 'image', received_type: 'INT' });
    const text = formatNodeErrors(res);
    expect(text).toContain("node 2 (Num) input 'v': Value 11 bigger than max of 10");
    expect(text).toContain("node 11 (Out) input 'x': Required input is missing");
  });

  it('reports min violations on linked-only subgraphs', async () => {
    const res = await v({ '1': { class_type: 'Num', inputs: { v: 0 } }, '2': { class_type: 'Out', inputs: { x: ['1', 0] } } });
    expect(res.node_errors['1'].errors[0]).toMatchObject({ type: 'value_smaller_than_min', message: 'Value 0 smaller than min of 1' });
  });

  it('lists every missing class, refuses no-output prompts, bad shapes and cycles', async () => {
    const missing = await v({
      '1': { class_type: 'Nope', inputs: {} },
      '2': { class_type: 'Gone', inputs: {} },
      '3': { class_type: 'Nope', inputs: {} },
    });
    expect(missing.error?.type).toBe('missing_node_type');
    expect(missing.error?.details).toBe('Missing node types: Nope (node 1, 3), Gone (node 2)');
    expect((await v({ '1': { class_type: 'Num', inputs: { v: 1 } } })).error?.type).toBe('prompt_no_outputs');
    expect((await v(undefined)).error?.type).toBe('no_prompt');
    expect((await v([1, 2])).error?.type).toBe('invalid_prompt');
    const cyc = await v({
      '1': { class_type: 'Use', inputs: { image: ['2', 0], f: 0, s: '', b: true } },
      '2': { class_type: 'Use', inputs: { image: ['1', 0], f: 0, s: '', b: true } },
      '3': { class_type: 'Out', inputs: { x: ['1', 0] } },
    });
    expect(cyc.node_errors['1'].errors.map((e) => e.type)).toContain('dependency_cycle');
    expect(cyc.node_errors['2'].errors.map((e) => e.type)).toContain('dependency_cycle');
  });

  it('keeps valid outputs when others fail (200 with node_errors in ComfyUI)', async () => {
    const res = await v({
      '1': { class_type: 'Num', inputs: { v: 3 } },
      '2': { class_type: 'Out', inputs: { x: ['1', 0] } },
      '3': { class_type: 'Num', inputs: { v: 99 } },
      '4': { class_type: 'Out', inputs: { x: ['3', 0] } },
    });
    expect(res.ok).toBe(true);
    expect(res.outputs).toEqual(['2']);
    expect(Object.keys(res.node_errors)).toEqual(['3']);
  });

  it('accepts 64-bit seeds up to 2^64−1, also as digit strings', async () => {
    for (const seed of [0, 2 ** 53 + 2, 18446744073709551615, '18446744073709551615']) {
      const res = await v({ '1': { class_type: 'Seed', inputs: { seed } }, '2': { class_type: 'Out', inputs: { x: ['1', 0] } } });
      expect(res.node_errors).toEqual({});
    }
    const neg = await v({ '1': { class_type: 'Seed', inputs: { seed: -1 } }, '2': { class_type: 'Out', inputs: { x: ['1', 0] } } });
    expect(neg.node_errors['1'].errors[0].type).toBe('value_smaller_than_min');
  });
});
