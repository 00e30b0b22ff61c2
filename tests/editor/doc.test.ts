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
  addGroup,
  applyPrimitives,
  connectError,
  copyNodes,
  pasteNodes,
  createReroute,
  groupBounds,
  groupMembers,
  insertReroute,
  primitiveEntry,
  removeGroups,
  rerouteType,
  updateGroup,
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
    const d = {
      ...emptyDoc(),
      nodes: [
        {
          id: 1,
          type: 'Foo',
          pos: [0, 0],
          size: [1, 1],
          flags: {},
          order: 0,
          mode: 0,
          inputs: [],
          outputs: [],
          properties: {},
          widgets_values: [],
        },
        {
          id: 2,
          type: 'Foo',
          pos: [0, 0],
          size: [1, 1],
          flags: {},
          order: 0,
          mode: 0,
          inputs: [],
          outputs: [],
          properties: {},
          widgets_values: [],
        },
        {
          id: 3,
          type: 'Reroute',
          pos: [0, 0],
          size: [1, 1],
          flags: {},
          order: 0,
          mode: 0,
          inputs: [],
          outputs: [],
          properties: {},
          widgets_values: [],
        },
        {
          id: 4,
          type: 'KSampler',
          pos: [0, 0],
          size: [1, 1],
          flags: {},
          order: 0,
          mode: 0,
          inputs: [],
          outputs: [],
          properties: {},
          widgets_values: [],
        },
      ],
    } as ReturnType<typeof emptyDoc>;
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
    expect(moved.nodes.map((n) => n.pos)).toEqual([
      [60, 30],
      [500, 500],
    ]);
  });

  it('type compatibility follows ComfyUI', () => {
    expect(typesCompatible('LATENT', 'LATENT')).toBe(true);
    expect(typesCompatible('*', 'IMAGE')).toBe(true);
    expect(typesCompatible('IMAGE', 'IMAGE,MASK')).toBe(true);
    expect(typesCompatible('IMAGE', 'LATENT')).toBe(false);
  });
});

describe('reroutes', () => {
  const base = () => {
    let d = createNode(emptyDoc(), 'EmptyLatentImage', info.EmptyLatentImage, [0, 0]);
    d = createNode(d, 'KSampler', info.KSampler, [400, 0]);
    return connect(d, 1, 0, 2, 1).doc;
  };

  it('splits a link with a reroute that takes the type flowing through it', () => {
    const d = insertReroute(base(), 1, [200, 0]);
    const r = d.nodes.find((n) => n.type === 'Reroute')!;
    expect(r.inputs).toEqual([{ name: '', type: '*', link: 2 }]);
    expect(r.outputs[0]).toMatchObject({ type: 'LATENT', links: [3] });
    expect(d.links).toEqual([
      [2, 1, 0, r.id, 0, 'LATENT'],
      [3, r.id, 0, 2, 1, 'LATENT'],
    ]);
    expect(d.nodes.find((n) => n.id === 2)!.inputs[1].link).toBe(3);
  });

  it('converts to a prompt that links straight to the real source, through chains of reroutes', () => {
    let d = insertReroute(base(), 1, [200, 0]);
    d = insertReroute(d, 3, [300, 0]);
    expect(d.nodes.filter((n) => n.type === 'Reroute')).toHaveLength(2);
    const prompt = convertWorkflowToPrompt(d, info).prompt;
    expect(Object.keys(prompt).sort()).toEqual(['1', '2']);
    expect(prompt['2'].inputs.latent_image).toEqual(['1', 0]);
  });

  it('checks types across a reroute in both directions and refuses loops', () => {
    let d = createReroute(base(), [200, 200]);
    const r = d.last_node_id;
    d = createNode(d, 'LoadImage', info.LoadImage, [0, 300]);
    const img = d.last_node_id;
    expect(rerouteType(d, r)).toBe('*');
    // Unconnected, it accepts anything; fed by IMAGE it only feeds IMAGE inputs.
    d = connect(d, img, 0, r, 0).doc;
    expect(rerouteType(d, r)).toBe('IMAGE');
    expect(connectError(d, r, 0, 2, 1)).toBe('IMAGE cannot connect to LATENT (latent_image)');
    // Downstream first: a reroute feeding a LATENT input refuses an IMAGE source.
    let e = createReroute(base(), [200, 200]);
    const r2 = e.last_node_id;
    e = connect(e, r2, 0, 2, 1).doc;
    e = createNode(e, 'LoadImage', info.LoadImage, [0, 300]);
    expect(connectError(e, e.last_node_id, 0, r2, 0)).toBe('IMAGE cannot connect to LATENT');
    expect(connectError(e, 1, 0, r2, 0)).toBeUndefined();
    let f = createReroute(createReroute(emptyDoc(), [0, 0]), [50, 0]);
    f = connect(f, 1, 0, 2, 0).doc;
    expect(connectError(f, 2, 0, 1, 0)).toBe('reroutes cannot form a loop');
  });
});

describe('primitive nodes', () => {
  it('drive the widgets they are linked to, and convert to the value', () => {
    let d = createNode(emptyDoc(), 'KSampler', info.KSampler, [400, 0]);
    d = ensureWidgetInput(d, 1, 'seed', 'INT').doc;
    const slot = d.nodes[0].inputs.findIndex((i) => i.name === 'seed');
    d = {
      ...d,
      last_node_id: 2,
      last_link_id: 1,
      nodes: [
        ...d.nodes.map((n) => ({ ...n, inputs: n.inputs.map((x, i) => (i === slot ? { ...x, link: 1 } : x)) })),
        {
          id: 2,
          type: 'PrimitiveNode',
          pos: [0, 0],
          size: [200, 80],
          flags: {},
          order: 1,
          mode: 0,
          inputs: [],
          outputs: [{ name: 'connect to widget input', type: 'INT', links: [1], widget: { name: 'seed' } }],
          properties: {},
          widgets_values: [777, 'fixed'],
        },
      ],
      links: [[1, 2, 0, 1, slot, 'INT']],
    } as ReturnType<typeof emptyDoc>;
    const e = primitiveEntry(d, d.nodes[1], info);
    expect(widgetDefs(e).map((w) => w.name)).toEqual(['seed', 'control_after_generate']);
    expect(primitiveEntry(d, d.nodes[1], info)).toBe(e);
    // After a queue the primitive's own control applies; the linked seed is left to the link.
    const controlled = applyControlAfterGenerate(
      {
        ...d,
        nodes: d.nodes.map((n) =>
          n.id === 2 ? { ...n, widgets_values: [777, 'increment'] } : { ...n, widgets_values: [5, 'increment', 20, 'euler'] },
        ),
      },
      info,
    );
    expect(controlled.nodes.map((n) => n.widgets_values[0])).toEqual([5, 778]);
    const applied = applyPrimitives(d, info);
    expect(applied.nodes[0].widgets_values[0]).toBe(777);
    expect(convertWorkflowToPrompt(applied, info).prompt['1'].inputs.seed).toBe(777);
  });
});

describe('groups', () => {
  it('are created around nodes, edited, removed, and keep their members for a whole drag', () => {
    let d = createNode(emptyDoc(), 'EmptyLatentImage', info.EmptyLatentImage, [100, 100]);
    d = createNode(d, 'EmptyLatentImage', info.EmptyLatentImage, [100, 400]);
    const b = groupBounds([{ x: 100, y: 100, w: 200, h: 100 }]);
    expect(b).toEqual([90, 56, 220, 154]);
    d = addGroup(d, b);
    expect(d.groups[0]).toMatchObject({ id: 1, title: 'Group', color: '#3f789e' });
    d = updateGroup(d, 0, { title: 'Latents', color: '#b06634' });
    expect(d.groups[0]).toMatchObject({ title: 'Latents', color: '#b06634' });
    expect(updateGroup(d, 0, { title: 'Latents' })).toBe(d);
    const members = new Map([[0, groupMembers(d, 0)]]);
    expect([...members.get(0)!]).toEqual([1]);
    // Dragged down over node 2, the group still carries only node 1.
    const moved = moveGroups(d, new Map([[0, [90, 356]]]), members);
    expect(moved.nodes.map((n) => n.pos)).toEqual([
      [100, 400],
      [100, 400],
    ]);
    const again = moveGroups(moved, new Map([[0, [90, 406]]]), members);
    expect(again.nodes.map((n) => n.pos)).toEqual([
      [100, 450],
      [100, 400],
    ]);
    expect(removeGroups(d, new Set([0])).groups).toEqual([]);
    expect(removeGroups(d, new Set([0])).nodes).toHaveLength(2);
  });
});

describe('copy and paste', () => {
  it('pastes copies under new ids, keeping the links between them but not those from outside', () => {
    let d = createNode(emptyDoc(), 'EmptyLatentImage', info.EmptyLatentImage, [0, 0]);
    d = createNode(d, 'KSampler', info.KSampler, [300, 0]);
    d = createNode(d, 'VAEDecode', info.VAEDecode, [600, 0]);
    d = connect(d, 1, 0, 2, 1).doc;
    d = connect(d, 2, 0, 3, 0).doc;
    const r = pasteNodes(d, copyNodes(d, new Set([2, 3])), [40, 40]);
    expect(r.ids).toEqual([4, 5]);
    expect(r.doc.nodes.find((n) => n.id === 4)!.pos).toEqual([340, 40]);
    expect(r.doc.links.slice(2)).toEqual([[3, 4, 0, 5, 0, 'LATENT']]);
    expect(r.doc.nodes.find((n) => n.id === 4)!.inputs[1].link).toBeNull();
    expect(r.doc.nodes.find((n) => n.id === 4)!.outputs[0].links).toEqual([3]);
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
