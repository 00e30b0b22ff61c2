import { describe, expect, it } from 'vitest';
import type { ObjectInfo, ObjectInfoEntry } from '../../engine/registry/registry.ts';
import {
  applyControlAfterGenerate,
  connect,
  createNode,
  emptyDoc,
  missingClasses,
  removeLink,
  removeNodes,
  ensureWidgetInput,
  moveGroups,
  typesCompatible,
  widgetDefs,
} from '../../editor/src/doc.ts';
import { fuzzyScore, rankNodes } from '../../editor/src/search.ts';
import { convertWorkflowToPrompt } from '../../engine/graph/convert.ts';
import { entry as fixtureEntry } from '../graph/object-info-fixture.ts';

const entry = (name: string, required: Record<string, unknown[]>, output: string[], category = 'test'): ObjectInfoEntry =>
  fixtureEntry(name, Object.entries(required), output, [], category);

const info: ObjectInfo = {
  KSampler: entry(
    'KSampler',
    {
      model: ['MODEL'],
      seed: ['INT', { default: 0, min: 0, max: 1000 }],
      steps: ['INT', { default: 20, min: 1, max: 10000 }],
      sampler_name: [['euler', 'heun']],
      latent_image: ['LATENT'],
    },
    ['LATENT'],
    'sampling',
  ),
  LoadImage: entry('LoadImage', { image: [['a.png'], { image_upload: true }] }, ['IMAGE', 'MASK'], 'image'),
  VAEDecode: entry('VAEDecode', { samples: ['LATENT'], vae: ['VAE'] }, ['IMAGE'], 'latent'),
  EmptyLatentImage: entry('EmptyLatentImage', { width: ['INT', { default: 512 }] }, ['LATENT'], 'latent'),
};

describe('editor document model', () => {
  it("derives widgets in ComfyUI's order with the control and upload extras", () => {
    expect(widgetDefs(info.KSampler).map((w) => w.name)).toEqual(['seed', 'control_after_generate', 'steps', 'sampler_name']);
    expect(widgetDefs(info.LoadImage).map((w) => w.name)).toEqual(['image', 'upload']);
  });

  it('creates nodes with default widget values and socket inputs', () => {
    const d = createNode(emptyDoc(), 'KSampler', info.KSampler, [10, 20]);
    const n = d.nodes[0];
    expect(n.widgets_values).toEqual([0, 'randomize', 20, 'euler']);
    expect(n.inputs.map((i) => i.name)).toEqual(['model', 'latent_image']);
    expect(n.outputs).toEqual([{ name: 'LATENT', type: 'LATENT', links: [], slot_index: 0 }]);
  });

  it('connects compatible sockets, refuses others with the reason, replaces an occupied input', () => {
    let d = createNode(emptyDoc(), 'EmptyLatentImage', info.EmptyLatentImage, [0, 0]);
    d = createNode(d, 'KSampler', info.KSampler, [300, 0]);
    d = createNode(d, 'LoadImage', info.LoadImage, [0, 300]);
    const bad = connect(d, 3, 0, 2, 1);
    expect(bad.error).toBe('IMAGE cannot connect to LATENT (latent_image)');
    const ok = connect(d, 1, 0, 2, 1);
    expect(ok.error).toBeUndefined();
    expect(ok.doc.links).toEqual([[1, 1, 0, 2, 1, 'LATENT']]);
    expect(ok.doc.nodes[1].inputs[1].link).toBe(1);
    expect(ok.doc.nodes[0].outputs[0].links).toEqual([1]);
    const again = connect(ok.doc, 1, 0, 2, 1).doc;
    expect(again.links.map((l) => l[0])).toEqual([2]);
    expect(again.nodes[0].outputs[0].links).toEqual([2]);
    const removed = removeNodes(again, new Set([1]));
    expect(removed.links).toEqual([]);
    expect(removed.nodes[0].inputs[1].link).toBeNull();
  });

  it('lists missing classes with their node ids, ignoring frontend-only nodes', () => {
    const d = { ...emptyDoc(), nodes: [
      { id: 1, type: 'Foo', pos: [0, 0], size: [1, 1], flags: {}, order: 0, mode: 0, inputs: [], outputs: [], properties: {}, widgets_values: [] },
      { id: 2, type: 'Foo', pos: [0, 0], size: [1, 1], flags: {}, order: 0, mode: 0, inputs: [], outputs: [], properties: {}, widgets_values: [] },
      { id: 3, type: 'Reroute', pos: [0, 0], size: [1, 1], flags: {}, order: 0, mode: 0, inputs: [], outputs: [], properties: {}, widgets_values: [] },
      { id: 4, type: 'KSampler', pos: [0, 0], size: [1, 1], flags: {}, order: 0, mode: 0, inputs: [], outputs: [], properties: {}, widgets_values: [] },
    ] } as ReturnType<typeof emptyDoc>;
    expect(missingClasses(d, info)).toEqual([{ class_type: 'Foo', node_ids: [1, 2] }]);
  });

  it('applies control_after_generate to seeds after queueing', () => {
    let d = createNode(emptyDoc(), 'KSampler', info.KSampler, [0, 0]);
    d = { ...d, nodes: [{ ...d.nodes[0], widgets_values: [5, 'increment', 20, 'euler'] }] };
    expect(applyControlAfterGenerate(d, info).nodes[0].widgets_values[0]).toBe(6);
    d = { ...d, nodes: [{ ...d.nodes[0], widgets_values: [1000, 'increment', 20, 'euler'] }] };
    expect(applyControlAfterGenerate(d, info).nodes[0].widgets_values[0]).toBe(1000);
    d = { ...d, nodes: [{ ...d.nodes[0], widgets_values: [5, 'fixed', 20, 'euler'] }] };
    expect(applyControlAfterGenerate(d, info)).toBe(d);
  });

  it('turns a widget into a linked input and back, and the converter follows the link while it exists', () => {
    const intSource = entry('IntSource', {}, ['INT']);
    const infoPlus = { ...info, IntSource: intSource };
    let d = createNode(emptyDoc(), 'IntSource', intSource, [0, 0]);
    d = createNode(d, 'KSampler', info.KSampler, [300, 0]);
    const ensured = ensureWidgetInput(d, 2, 'steps', 'INT');
    expect(ensured.slot).toBe(2);
    const linked = connect(ensured.doc, 1, 0, 2, ensured.slot).doc;
    expect(linked.nodes[1].inputs[2]).toEqual({ name: 'steps', type: 'INT', link: 1, widget: { name: 'steps' } });
    expect(convertWorkflowToPrompt(linked, infoPlus).prompt['2'].inputs.steps).toEqual(['1', 0]);
    const unlinked = removeLink(linked, 1);
    expect(convertWorkflowToPrompt(unlinked, infoPlus).prompt['2'].inputs.steps).toBe(20);
    expect(ensureWidgetInput(linked, 2, 'steps', 'INT').slot).toBe(2);
  });

  it('moving a group carries the nodes inside it and leaves the others', () => {
    let d = createNode(emptyDoc(), 'EmptyLatentImage', info.EmptyLatentImage, [10, 10]);
    d = createNode(d, 'EmptyLatentImage', info.EmptyLatentImage, [500, 500]);
    d = { ...d, groups: [{ title: 'G', bounding: [0, 0, 100, 100] }] };
    const moved = moveGroups(d, new Map([[0, [50, 20]]]));
    expect(moved.groups[0].bounding).toEqual([50, 20, 100, 100]);
    expect(moved.nodes.map((n) => n.pos)).toEqual([[60, 30], [500, 500]]);
  });

  it('type compatibility follows ComfyUI', () => {
    expect(typesCompatible('LATENT', 'LATENT')).toBe(true);
    expect(typesCompatible('*', 'IMAGE')).toBe(true);
    expect(typesCompatible('IMAGE', 'IMAGE,MASK')).toBe(true);
    expect(typesCompatible('IMAGE', 'LATENT')).toBe(false);
  });
});

describe('node search', () => {
  it('ranks prefix and word-start matches first and filters by socket type', () => {
    expect(fuzzyScore('ks', 'KSampler')).toBeGreaterThan(fuzzyScore('ks', 'LoadImageMasks'));
    expect(fuzzyScore('xyz', 'KSampler')).toBe(-1);
    expect(rankNodes(info, 'vae')[0]).toBe('VAEDecode');
    expect(rankNodes(info, '', 'VAE')).toEqual(['VAEDecode']);
    expect(rankNodes(info, 'lat', 'LATENT')).toContain('EmptyLatentImage');
  });
});
