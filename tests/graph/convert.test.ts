import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MissingNodeTypesError, convertOrThrow, convertWorkflowToPrompt, promptToWorkflow } from '../../engine/graph/convert.ts';
import type { ApiPrompt } from '../../engine/graph/prompt.ts';
import { FIXTURE_OBJECT_INFO as INFO } from './object-info-fixture.ts';

const FIXTURES = path.resolve(import.meta.dirname, '../fixtures/workflows');
const workflows = fs.readdirSync(FIXTURES).filter((f) => f.endsWith('.workflow.json'));

function load(file: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(path.join(FIXTURES, file), 'utf8')) as Record<string, unknown>;
}

/** Inputs minus the legacy UI-only keys ComfyUI's old frontends sent (see the fixtures' INDEX.md). */
function comparable(p: ApiPrompt): Record<string, { class_type: string; inputs: Record<string, unknown> }> {
  const legacy = new Set(['upload', 'choose file to upload', 'Random seed after every gen']);
  return Object.fromEntries(
    Object.entries(p).map(([id, n]) => [
      id,
      { class_type: n.class_type, inputs: Object.fromEntries(Object.entries(n.inputs).filter(([k]) => !legacy.has(k))) },
    ]),
  );
}

describe('UI workflow → API prompt (ComfyUI fixtures in tests/fixtures/workflows)', () => {
  it('finds the fixtures', () => {
    expect(workflows.length).toBeGreaterThanOrEqual(8);
  });

  it.each(workflows)('%s converts as ComfyUI did', (file) => {
    const wf = load(file);
    const r = convertWorkflowToPrompt(wf, INFO);
    expect(r.missing).toEqual([]);
    const promptFile = file.replace('.workflow.json', '.prompt.json');
    if (fs.existsSync(path.join(FIXTURES, promptFile))) {
      const expected = comparable(load(promptFile) as unknown as ApiPrompt);
      const got = comparable(r.prompt);
      // Inputs added to a class after the file was saved may appear with their default (INDEX.md).
      for (const [id, node] of Object.entries(got)) {
        for (const [k, v] of Object.entries(node.inputs)) {
          if (expected[id] && !(k in expected[id].inputs)) {
            const spec = INFO[node.class_type].input.required[k] as [unknown, { default?: unknown }?];
            expect(v).toEqual(spec[1]?.default);
            delete node.inputs[k];
          }
        }
      }
      expect(got).toEqual(expected);
    } else {
      // No reference prompt: the same executable classes and the same links as the workflow.
      const nodes = (wf.nodes as { id: number; type: string; mode?: number }[]).filter((n) => n.mode !== 2 && n.mode !== 4 && INFO[n.type]);
      expect(Object.keys(r.prompt).sort()).toEqual(nodes.map((n) => String(n.id)).sort());
      for (const n of nodes) expect(r.prompt[String(n.id)].class_type).toBe(n.type);
      for (const [, o, os, t, ts] of wf.links as [number, number, number, number, number, string][]) {
        const target = (wf.nodes as { id: number; inputs: { name: string }[] }[]).find((n) => n.id === t)!;
        expect(r.prompt[String(t)].inputs[target.inputs[ts].name]).toEqual([String(o), os]);
      }
    }
  });
});

function wf(nodes: unknown[], links: unknown[]): Record<string, unknown> {
  return { last_node_id: 99, last_link_id: 99, nodes, links, groups: [], config: {}, extra: {}, version: 0.4 };
}
const n = (id: number, type: string, extra: Record<string, unknown> = {}) => ({
  id,
  type,
  pos: [0, 0],
  size: [1, 1],
  flags: {},
  order: 0,
  mode: 0,
  inputs: [],
  outputs: [],
  properties: {},
  ...extra,
});

describe('conversion rules', () => {
  const ckpt = n(1, 'CheckpointLoaderSimple', {
    widgets_values: ['a.safetensors'],
    outputs: [
      { name: 'MODEL', type: 'MODEL', links: [] },
      { name: 'CLIP', type: 'CLIP', links: [1] },
      { name: 'VAE', type: 'VAE', links: [] },
    ],
  });

  it('maps widgets in order skipping control_after_generate, and defaults missing trailing values', () => {
    const ks = n(3, 'KSampler', { widgets_values: [7, 'randomize', 30, 6.5, 'euler', 'karras'] });
    const r = convertWorkflowToPrompt(wf([ks], []), INFO);
    expect(r.prompt['3'].inputs).toEqual({ seed: 7, steps: 30, cfg: 6.5, sampler_name: 'euler', scheduler: 'karras', denoise: 1 });
  });

  it('follows legacy Reroute nodes and drops muted sources', () => {
    const reroute = n(2, 'Reroute', { inputs: [{ name: '', type: '*', link: 1 }], outputs: [{ name: '', type: 'CLIP', links: [2] }] });
    const enc = n(3, 'CLIPTextEncode', { inputs: [{ name: 'clip', type: 'CLIP', link: 2 }], widgets_values: ['hi'] });
    const r = convertWorkflowToPrompt(
      wf(
        [ckpt, reroute, enc],
        [
          [1, 1, 1, 2, 0, 'CLIP'],
          [2, 2, 0, 3, 0, 'CLIP'],
        ],
      ),
      INFO,
    );
    expect(r.prompt['3'].inputs).toEqual({ text: 'hi', clip: ['1', 1] });
    expect(r.prompt['2']).toBeUndefined();
    const muted = convertWorkflowToPrompt(
      wf(
        [{ ...ckpt, mode: 2 }, reroute, enc],
        [
          [1, 1, 1, 2, 0, 'CLIP'],
          [2, 2, 0, 3, 0, 'CLIP'],
        ],
      ),
      INFO,
    );
    expect(muted.prompt['1']).toBeUndefined();
    expect(muted.prompt['3'].inputs).toEqual({ text: 'hi' });
  });

  it('passes through bypassed nodes by matching types', () => {
    const empty = n(1, 'EmptyLatentImage', { widgets_values: [64, 64, 1], outputs: [{ name: 'LATENT', type: 'LATENT', links: [1] }] });
    const up = n(2, 'LatentUpscale', {
      mode: 4,
      inputs: [{ name: 'samples', type: 'LATENT', link: 1 }],
      outputs: [{ name: 'LATENT', type: 'LATENT', links: [2] }],
      widgets_values: ['nearest-exact', 128, 128, 'disabled'],
    });
    const dec = n(3, 'VAEDecode', {
      inputs: [
        { name: 'samples', type: 'LATENT', link: 2 },
        { name: 'vae', type: 'VAE', link: null },
      ],
    });
    const r = convertWorkflowToPrompt(
      wf(
        [empty, up, dec],
        [
          [1, 1, 0, 2, 0, 'LATENT'],
          [2, 2, 0, 3, 0, 'LATENT'],
        ],
      ),
      INFO,
    );
    expect(r.prompt['2']).toBeUndefined();
    expect(r.prompt['3'].inputs.samples).toEqual(['1', 0]);
  });

  it('uses the target widget value for PrimitiveNode links and lets a linked converted widget win', () => {
    const prim = n(5, 'PrimitiveNode', {
      outputs: [{ name: 'INT', type: 'INT', links: [7], widget: { name: 'steps' } }],
      widgets_values: [33, 'fixed'],
    });
    const ks = n(3, 'KSampler', {
      inputs: [{ name: 'steps', type: 'INT', link: 7, widget: { name: 'steps' } }],
      widgets_values: [1, 'fixed', 33, 8, 'euler', 'normal', 1],
    });
    const r = convertWorkflowToPrompt(wf([prim, ks], [[7, 5, 0, 3, 0, 'INT']]), INFO);
    expect(r.prompt['3'].inputs.steps).toBe(33);
    expect(r.prompt['5']).toBeUndefined();
  });

  it('reads the v1 schema (links as objects) and legacy object positions', () => {
    const v1 = {
      version: 1,
      state: {},
      nodes: [
        { ...ckpt, pos: { 0: 1, 1: 2 } },
        n(3, 'CLIPTextEncode', { inputs: [{ name: 'clip', type: 'CLIP', link: 1 }], widgets_values: ['x'] }),
      ],
      links: [{ id: 1, origin_id: 1, origin_slot: '1', target_id: 3, target_slot: 0, type: 'CLIP' }],
    };
    expect(convertWorkflowToPrompt(v1, INFO).prompt['3'].inputs.clip).toEqual(['1', 1]);
  });

  it('lists every missing class with the nodes that use it', () => {
    const w = wf([n(1, 'Foo'), n(2, 'Bar'), n(3, 'Foo'), n(4, 'Note')], []);
    const r = convertWorkflowToPrompt(w, INFO);
    expect(r.missing).toEqual([
      { class_type: 'Foo', node_ids: ['1', '3'] },
      { class_type: 'Bar', node_ids: ['2'] },
    ]);
    expect(() => convertOrThrow(w, INFO)).toThrow(MissingNodeTypesError);
    expect(() => convertOrThrow(w, INFO)).toThrow('Foo (node 1, 3); Bar (node 2)');
  });

  it('rejects malformed workflows with a readable message', () => {
    expect(() => convertWorkflowToPrompt({ nodes: 3 }, INFO)).toThrow('invalid workflow: nodes must be a list');
    expect(() => convertWorkflowToPrompt({ nodes: [{ type: 'X' }] }, INFO)).toThrow('nodes[0] has no id');
  });

  it('turns an API prompt back into a workflow that converts to the same prompt', () => {
    const file = workflows.find((f) => f.startsWith('hiresfix'))!;
    const prompt = load(file.replace('.workflow.json', '.prompt.json')) as unknown as ApiPrompt;
    const back = convertWorkflowToPrompt(promptToWorkflow(prompt, INFO), INFO).prompt;
    expect(comparable(back)).toEqual(comparable(prompt));
  });
});
