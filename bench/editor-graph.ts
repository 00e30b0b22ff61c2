/**
 * What the editor benchmark and its render-path tests (tests/editor/render-paths.test.ts) share: the
 * big workflow they open and a page script that watches which node elements React Flow creates.
 */
export interface GridWorkflow {
  nodes: unknown[];
  links: [number, number, number, number, number, string][];
  [key: string]: unknown;
}

/** A grid of ImageScaleBy → ImageInvert chains, `cols` nodes a row, each linked to the one before it in its row. */
export function gridWorkflow(count: number, cols = 25): GridWorkflow {
  const nodes: unknown[] = [];
  const links: GridWorkflow['links'] = [];
  for (let i = 0; i < count; i++) {
    const col = i % cols;
    const row = Math.floor(i / cols);
    const id = i + 1;
    const isScale = col % 2 === 0;
    const inLink = col > 0 ? links.length + 1 : null;
    if (col > 0) links.push([links.length + 1, id - 1, 0, id, 0, 'IMAGE']);
    const hasNext = col < cols - 1 && i + 1 < count;
    nodes.push({
      id,
      type: isScale ? 'ImageScaleBy' : 'ImageInvert',
      pos: [col * 340, row * 160],
      size: [300, 100],
      flags: {},
      order: i,
      mode: 0,
      inputs: [{ name: 'image', type: 'IMAGE', link: inLink }],
      outputs: [{ name: 'IMAGE', type: 'IMAGE', links: hasNext ? [links.length + 1] : [] }],
      properties: {},
      widgets_values: isScale ? ['bilinear', 1.5] : [],
    });
  }
  return { last_node_id: count, last_link_id: links.length, nodes, links, groups: [], config: {}, extra: {}, version: 0.4 };
}

/**
 * Page script: collects the React Flow node elements created from now on (moved ones are not new);
 * `restart()` starts a new collection from the elements present then.
 */
export const NODE_ELEMENTS_WATCH = `(() => {
  const w = (window.__nodeElements = { seen: new Set(), created: new Set() });
  w.restart = () => { w.seen = new Set(document.querySelectorAll('.react-flow__node')); w.created = new Set(); };
  w.restart();
  new MutationObserver((records) => {
    for (const r of records)
      for (const n of r.addedNodes)
        if (n instanceof Element)
          for (const e of [n, ...n.querySelectorAll('.react-flow__node')])
            if (e.classList.contains('react-flow__node') && !w.seen.has(e)) w.created.add(e);
  }).observe(document.body, { subtree: true, childList: true });
})()`;
