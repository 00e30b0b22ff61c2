import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { expandWorkflow } from '../../engine/graph/convert-expand.ts';
import { convertWorkflowToPrompt } from '../../engine/graph/convert.ts';
import type { ApiPrompt } from '../../engine/graph/prompt.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { createBuiltinRegistry } from '../../nodes/index.ts';

const DIR = path.resolve(import.meta.dirname, '../fixtures/subgraphs');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-nested-'));
const INFO = createBuiltinRegistry().objectInfo({ paths: new FolderPaths({ baseDir: tmp, modelsDir: tmp }) });

const load = (f: string): Record<string, unknown> => JSON.parse(fs.readFileSync(path.join(DIR, f), 'utf8')) as Record<string, unknown>;
const comparable = (p: ApiPrompt) =>
  Object.fromEntries(Object.entries(p).map(([id, n]) => [id, { inputs: n.inputs, class_type: n.class_type }]));
const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

describe('subgraphs (definitions.subgraphs, instance ids parent:child) as the frontend expands them', () => {
  const wf = load('subgraph_nested.workflow.json');

  it('gives the API prompt the frontend gives: nested instances, promoted widgets, bypass inside, pass-through output, muted instance', () => {
    const r = convertWorkflowToPrompt(wf, INFO);
    expect(r.missing).toEqual([]);
    expect(comparable(r.prompt)).toEqual(load('subgraph_nested.prompt.json'));
  });

  it('titles come from the inner nodes', () => {
    const r = convertWorkflowToPrompt(wf, INFO);
    expect(r.prompt['10:3']._meta?.title).toBe('KSampler');
  });

  it('a bypassed top-level instance passes its inputs through by type and emits none of its nodes', () => {
    const w = clone(wf);
    (w.nodes as { id: number; mode: number }[]).find((n) => n.id === 10)!.mode = 4;
    const r = convertWorkflowToPrompt(w, INFO);
    expect(Object.keys(r.prompt).filter((k) => k.startsWith('10:'))).toEqual([]);
    // VAEDecode's samples (LATENT) and vae (VAE) come from the instance's own inputs of those types.
    expect(r.prompt['8'].inputs).toEqual({ samples: ['5', 0], vae: ['4', 2] });
  });

  it('a muted top-level instance drops what depends on its outputs', () => {
    const w = clone(wf);
    (w.nodes as { id: number; mode: number }[]).find((n) => n.id === 10)!.mode = 2;
    const r = convertWorkflowToPrompt(w, INFO);
    expect(Object.keys(r.prompt).filter((k) => k.startsWith('10:'))).toEqual([]);
    expect(r.prompt['8'].inputs).toEqual({});
  });

  it('a bypassed instance inside a subgraph still emits its nodes but passes its inputs through', () => {
    const w = clone(wf);
    const defs = (w.definitions as { subgraphs: { id: string; nodes: { id: number; mode: number }[] }[] }).subgraphs;
    defs[0].nodes.find((n) => n.id === 20)!.mode = 4;
    defs[1].nodes[0].mode = 0;
    const r = convertWorkflowToPrompt(w, INFO);
    expect(r.prompt['10:20:11'].class_type).toBe('LoraLoaderModelOnly');
    expect(r.prompt['10:20:11'].inputs).toEqual({ lora_name: 'detail.safetensors', strength_model: 0.8, model: ['4', 0] });
    expect(r.prompt['10:3'].inputs.model).toEqual(['4', 0]);
    // Un-bypassed inner LoRA, active nested instance: the sampler takes the LoRA's output.
    defs[0].nodes.find((n) => n.id === 20)!.mode = 0;
    expect(convertWorkflowToPrompt(w, INFO).prompt['10:3'].inputs.model).toEqual(['10:20:11', 0]);
  });

  it('a linked instance input wins over its promoted widget; without widgets_values the inner widget value stands', () => {
    const w = clone(wf);
    const inst = (w.nodes as { id: number; widgets_values?: unknown[] }[]).find((n) => n.id === 10)!;
    delete inst.widgets_values;
    const r = convertWorkflowToPrompt(w, INFO);
    expect(r.prompt['10:6'].inputs.text).toBe('a placeholder prompt');
    expect(r.prompt['10:3'].inputs.seed).toBe(1);
    expect(r.prompt['10:3'].inputs.steps).toEqual(['13', 0]);
  });

  it('legacy proxy widgets (properties.proxyWidgets): values follow the proxy list, for subgraph inputs and inner widgets', () => {
    const w = clone(wf);
    const inst = (w.nodes as { id: number; properties: Record<string, unknown>; widgets_values?: unknown[] }[]).find((n) => n.id === 10)!;
    inst.properties.proxyWidgets = [
      ['-1', 'text'],
      ['7', 'text'],
      ['-1', 'seed'],
    ];
    inst.widgets_values = ['a proxy cat', 'proxy negative', 999];
    const r = convertWorkflowToPrompt(w, INFO);
    expect(r.prompt['10:6'].inputs.text).toBe('a proxy cat');
    expect(r.prompt['10:7'].inputs.text).toBe('proxy negative');
    expect(r.prompt['10:3'].inputs.seed).toBe(999);
    // The other instance of the same subgraph keeps its own values.
    expect(r.prompt['14:7'].inputs.text).toBe('blurry, lowres');
    expect(r.prompt['14:3'].inputs.seed).toBe(777);
  });

  it('refuses a subgraph that contains itself, naming it', () => {
    const w = clone(wf);
    const defs = (w.definitions as { subgraphs: { id: string; nodes: { type: string }[] }[] }).subgraphs;
    defs[1].nodes[0].type = defs[0].id;
    expect(() => convertWorkflowToPrompt(w, INFO)).toThrow(/subgraph 4f6c1a2e-8d3b-4c5a-9e7f-0a1b2c3d4e5a contains itself/);
  });

  it('an instance of an unknown definition stays a missing class', () => {
    const w = clone(wf);
    (w.nodes as { id: number; type: string }[]).find((n) => n.id === 14)!.type = 'deadbeef-0000-4000-8000-000000000000';
    const r = convertWorkflowToPrompt(w, INFO);
    expect(r.missing).toEqual([{ class_type: 'deadbeef-0000-4000-8000-000000000000', node_ids: ['14'] }]);
  });

  it('the expanded workflow is a flat 0.4 workflow whose links and outputs agree', () => {
    const flat = expandWorkflow(wf, INFO).workflow;
    expect(flat.definitions).toBeUndefined();
    const nodes = flat.nodes as { id: number | string; outputs?: { links?: number[] }[]; inputs?: { link: number | null }[] }[];
    const links = flat.links as [number, number | string, number, number | string, number, string][];
    const ids = new Set(nodes.map((n) => String(n.id)));
    for (const [id, o, os, t, ts] of links) {
      expect(ids.has(String(o)) && ids.has(String(t))).toBe(true);
      expect(nodes.find((n) => String(n.id) === String(t))!.inputs![ts].link).toBe(id);
      expect(nodes.find((n) => String(n.id) === String(o))!.outputs![os].links).toContain(id);
    }
    expect(new Set(links.map((l) => l[0])).size).toBe(links.length);
  });
});

describe('legacy group nodes (extra.groupNodes, workflow>Name and workflow/Name)', () => {
  const wf = load('group_node.workflow.json');

  it('gives the API prompt the frontend gives: inner ids group:index, the instance widget values, internal and external links', () => {
    const r = convertWorkflowToPrompt(wf, INFO);
    expect(r.missing).toEqual([]);
    expect(comparable(r.prompt)).toEqual(load('group_node.prompt.json'));
  });

  it('a widget converted to an input inside the group becomes the last group input and the last group widget', () => {
    const w = clone(wf);
    const g = (w.extra as { groupNodes: { Sampler: { nodes: { inputs: Record<string, unknown>[] }[] } } }).groupNodes.Sampler;
    g.nodes[2].inputs.push({ name: 'seed', type: 'INT', link: null, widget: { name: 'seed' } });
    const nodes = w.nodes as { id: number; inputs?: Record<string, unknown>[]; outputs?: unknown[]; widgets_values?: unknown[] }[];
    const inst = nodes.find((n) => n.id === 10)!;
    // The group's widgets: text, "CLIPTextEncode text", steps, cfg, sampler, scheduler, denoise, then the converted seed and its control.
    inst.widgets_values = ['a castle on a hill', 'ugly, deformed', 25, 6, 'dpmpp_2m', 'karras', 0.9, 31337, 'fixed'];
    let r = convertWorkflowToPrompt(w, INFO);
    expect(r.prompt['10:2'].inputs).toMatchObject({
      seed: 31337,
      steps: 25,
      cfg: 6,
      sampler_name: 'dpmpp_2m',
      scheduler: 'karras',
      denoise: 0.9,
    });
    // Linked from outside through the group's fifth input.
    inst.inputs!.push({ name: 'seed', type: 'INT', link: 50, widget: { name: 'seed' } });
    nodes.push({
      id: 20,
      type: 'PrimitiveInt',
      outputs: [{ name: 'INT', type: 'INT', links: [50] }],
      widgets_values: [5, 'fixed'],
    } as (typeof nodes)[number]);
    (w.links as unknown[]).push([50, 20, 0, 10, 4, 'INT']);
    r = convertWorkflowToPrompt(w, INFO);
    expect(r.prompt['10:2'].inputs.seed).toEqual(['20', 0]);
  });

  it('reports inner classes that are not installed', () => {
    const w = clone(wf);
    const g = (w.extra as { groupNodes: { Sampler: { nodes: { type: string }[] } } }).groupNodes.Sampler;
    g.nodes[2].type = 'NoSuchSampler';
    const r = convertWorkflowToPrompt(w, INFO);
    expect(r.warnings.some((x) => x.includes('NoSuchSampler'))).toBe(true);
    expect(r.missing.map((m) => m.class_type)).toEqual(['NoSuchSampler']);
  });
});
