/**
 * Converted widgets and moved links as document edits (editor/src/widget-inputs.ts, link-moves.ts), on
 * the built-in nodes' /object_info: which widgets a file has converted, conversion both ways with the
 * node's link slots kept right, and Shift+drag's move of every link of an output.
 */
import { describe, expect, it } from 'vitest';
import { connect, createNode, emptyDoc, widgetDefs, type WorkflowDoc } from '../../editor/src/doc.ts';
import { moveOutputLinks } from '../../editor/src/link-moves.ts';
import { convertedWidgets, convertInputToWidget, convertWidgetToInput, listWidgetsBeforeLink } from '../../editor/src/widget-inputs.ts';
import { convertWorkflowToPrompt } from '../../engine/graph/convert.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import type { ObjectInfo } from '../../engine/registry/registry.ts';
import { createBuiltinRegistry } from '../../nodes/index.ts';

const info: ObjectInfo = createBuiltinRegistry().objectInfo({ paths: new FolderPaths({ baseDir: '/nonexistent-weft-base' }) });
const ks = widgetDefs(info.KSampler);

/** EmptyLatentImage (1) → KSampler (2) latent_image, and a KSampler ready for conversions. */
function graph(): WorkflowDoc {
  let d = createNode(emptyDoc(), 'EmptyLatentImage', info.EmptyLatentImage, [0, 0]);
  d = createNode(d, 'KSampler', info.KSampler, [300, 0]);
  return connect(d, 1, 0, 2, 3).doc;
}

const inputNames = (d: WorkflowDoc, id: number) => d.nodes.find((n) => n.id === id)!.inputs.map((i) => i.name);

describe('widgets converted to inputs', () => {
  it('a node listing only some widgets has those converted; one listing every widget (ComfyUI 1.16+) has none', () => {
    const sampler = graph().nodes[1];
    expect(convertedWidgets(sampler, ks).size).toBe(0);
    const old = { ...sampler, inputs: [...sampler.inputs, { name: 'seed', type: 'INT', link: null, widget: { name: 'seed' } }] };
    expect([...convertedWidgets(old, ks)]).toEqual(['seed']);
    const every = ks
      .filter((w) => !w.extra)
      .map((w) => ({ name: w.name, type: w.kind === 'COMBO' ? 'COMBO' : w.kind, link: null, widget: { name: w.name } }));
    expect(every.map((i) => i.name)).toEqual(['seed', 'steps', 'cfg', 'sampler_name', 'scheduler', 'denoise']);
    expect(convertedWidgets({ ...sampler, inputs: [...sampler.inputs, ...every] }, ks).size).toBe(0);
  });

  it('converts a widget to an input and back; the value still reaches the prompt either way', () => {
    const d0 = graph();
    const d1 = convertWidgetToInput(d0, 2, 'steps', info.KSampler);
    expect(inputNames(d1, 2)).toEqual(['model', 'positive', 'negative', 'latent_image', 'steps']);
    expect(d1.nodes[1].inputs[4]).toEqual({ name: 'steps', type: 'INT', link: null, widget: { name: 'steps' } });
    expect([...convertedWidgets(d1.nodes[1], ks)]).toEqual(['steps']);
    const p0 = convertWorkflowToPrompt(d0, info).prompt['2'].inputs;
    expect(convertWorkflowToPrompt(d1, info).prompt['2'].inputs).toEqual(p0);
    const d2 = convertInputToWidget(d1, 2, 'steps');
    expect(d2.nodes[1].inputs).toEqual(d0.nodes[1].inputs);
    expect(d2.links).toEqual(d0.links);
  });

  it('on a 1.16-style node the other unlinked entries go, and links after them move to their new slots', () => {
    let d = graph();
    // KSampler listing every widget before its latent link, as a modern file may order them.
    const s = d.nodes[1];
    const widgets = ks
      .filter((w) => !w.extra)
      .map((w) => ({ name: w.name, type: w.kind === 'COMBO' ? 'COMBO' : w.kind, link: null, widget: { name: w.name } }));
    const inputs = [...s.inputs.slice(0, 3), ...widgets, s.inputs[3]];
    d = { ...d, nodes: [d.nodes[0], { ...s, inputs }], links: d.links.map((l) => [l[0], l[1], l[2], l[3], inputs.length - 1, l[5]]) };
    expect(convertedWidgets(d.nodes[1], ks).size).toBe(0);
    const c = convertWidgetToInput(d, 2, 'cfg', info.KSampler);
    expect(inputNames(c, 2)).toEqual(['model', 'positive', 'negative', 'cfg', 'latent_image']);
    expect(c.links).toEqual([[1, 1, 0, 2, 4, 'LATENT']]);
    expect(c.nodes[1].inputs[4].link).toBe(1);
    expect(convertWorkflowToPrompt(c, info).prompt['2'].inputs).toEqual(convertWorkflowToPrompt(d, info).prompt['2'].inputs);
  });

  it('a link dropped on a widget of a node without conversions lists every widget first, so unlinking shows the widget again', () => {
    const d = listWidgetsBeforeLink(graph(), 2, info.KSampler);
    expect(inputNames(d, 2)).toEqual([
      'model',
      'positive',
      'negative',
      'latent_image',
      'seed',
      'steps',
      'cfg',
      'sampler_name',
      'scheduler',
      'denoise',
    ]);
    expect(convertedWidgets(d.nodes[1], ks).size).toBe(0);
    // With a widget converted the node is in the old layout and stays so.
    const old = convertWidgetToInput(graph(), 2, 'seed', info.KSampler);
    expect(listWidgetsBeforeLink(old, 2, info.KSampler)).toBe(old);
  });
});

describe('Shift+drag link moves', () => {
  it('moves every link of an output to another output and refuses a type that does not fit, changing nothing', () => {
    let d = createNode(emptyDoc(), 'LoadImage', info.LoadImage, [0, 0]);
    d = createNode(d, 'LoadImage', info.LoadImage, [0, 300]);
    for (let i = 0; i < 2; i++) d = createNode(d, 'ImageInvert', info.ImageInvert, [300, 200 * i]);
    d = connect(connect(d, 1, 0, 3, 0).doc, 1, 0, 4, 0).doc;
    const moved = moveOutputLinks(d, { node: 1, slot: 0 }, { node: 2, slot: 0 });
    expect(moved.error).toBeUndefined();
    expect(moved.doc.links.map((l) => [l[1], l[2], l[3], l[4]])).toEqual([
      [2, 0, 3, 0],
      [2, 0, 4, 0],
    ]);
    expect(moved.doc.nodes[0].outputs[0].links).toEqual([]);
    expect(moved.doc.nodes[1].outputs[0].links).toEqual(moved.doc.links.map((l) => l[0]));
    // LoadImage's MASK output cannot feed ImageInvert's IMAGE input.
    const refused = moveOutputLinks(d, { node: 1, slot: 0 }, { node: 2, slot: 1 });
    expect(refused.error).toBe('MASK cannot connect to IMAGE (image)');
    expect(refused.doc).toBe(d);
  });
});
