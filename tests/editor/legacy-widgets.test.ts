import { describe, expect, it } from 'vitest';
import { convertWorkflowToPrompt } from '../../engine/graph/convert.ts';
import { alignLegacyWidgetValues, widgetDefs } from '../../engine/graph/widgets.ts';
import type { ObjectInfo } from '../../engine/registry/registry.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { createBuiltinRegistry } from '../../nodes/index.ts';

const info: ObjectInfo = createBuiltinRegistry().objectInfo({ paths: new FolderPaths({ baseDir: '/nonexistent-weft-base' }) });

function maskNode(widgets_values: unknown[]) {
  return {
    last_node_id: 1,
    last_link_id: 0,
    nodes: [
      {
        id: 1,
        type: 'LoadImageMask',
        pos: [0, 0],
        size: [300, 100],
        flags: {},
        order: 0,
        mode: 0,
        inputs: [],
        outputs: [],
        widgets_values,
      },
    ],
    links: [],
    groups: [],
    version: 0.4,
  };
}

describe('widget values of files saved before the upload button stored its value', () => {
  it('LoadImageMask: the widget order has the upload button between image and channel', () => {
    expect(widgetDefs(info.LoadImageMask).map((w) => w.name)).toEqual(['image', 'upload', 'channel']);
  });

  it('an old LoadImageMask list gets the button value back, so channel reads its own value', () => {
    const defs = widgetDefs(info.LoadImageMask);
    expect(alignLegacyWidgetValues(defs, ['m.png', 'red'])).toEqual(['m.png', 'image', 'red']);
    // Today's lists and lists of any other length stay as they are.
    expect(alignLegacyWidgetValues(defs, ['m.png', 'image', 'green'])).toEqual(['m.png', 'image', 'green']);
    expect(alignLegacyWidgetValues(defs, ['m.png'])).toEqual(['m.png']);
    expect(alignLegacyWidgetValues(widgetDefs(info.LoadImage), ['a.png'])).toEqual(['a.png', 'image']);
    expect(alignLegacyWidgetValues(widgetDefs(info.KSampler), [1, 'fixed', 20, 8, 'euler', 'normal'])).toEqual([
      1,
      'fixed',
      20,
      8,
      'euler',
      'normal',
    ]);
  });

  it('the prompt of an old file carries the saved channel, not the default', () => {
    expect(convertWorkflowToPrompt(maskNode(['m.png', 'red']), info).prompt['1'].inputs).toEqual({ image: 'm.png', channel: 'red' });
    expect(convertWorkflowToPrompt(maskNode(['m.png', 'image', 'blue']), info).prompt['1'].inputs).toEqual({
      image: 'm.png',
      channel: 'blue',
    });
  });
});
