import type { Edge } from '@xyflow/react';
import { useMemo, useRef, type RefObject } from 'react';
import type { ObjectInfo } from '../../engine/registry/registry.ts';
import { PRIMITIVE, primitiveEntry, REROUTE, type DocGroup, type WorkflowDoc } from './doc.ts';
import { nodeTitle, type Lang } from './i18n.ts';
import {
  typeColor,
  type CanvasNode,
  type NodeRuntime,
  type WeftFlowNode,
  type WeftGroupNode,
  type WeftNodeData,
  type WeftRerouteNode,
} from './NodeView.tsx';

// One shared empty runtime, so nodes without runtime state keep equal props between renders.
const NO_RUNTIME: NodeRuntime = {};

/** ComfyUI's node flags as React Flow props: collapsed nodes show their title only, pinned ones stay put. */
function flagProps(flags: Record<string, unknown> | undefined): { className?: string; draggable?: boolean } {
  const cls = [flags?.collapsed ? 'collapsed' : '', flags?.pinned ? 'pinned' : ''].filter(Boolean).join(' ');
  return { ...(cls ? { className: cls } : {}), ...(flags?.pinned ? { draggable: false } : {}) };
}

export interface CanvasInputs {
  doc: WorkflowDoc;
  info: ObjectInfo;
  runtime: Record<string, NodeRuntime>;
  lang: Lang;
  selected: Set<number>;
  selectedGroups: Set<number>;
  selectedEdges: Set<string>;
  /** Drawn sizes by node id: a node object made anew carries its size, so React Flow need not measure it again. */
  measured: RefObject<Record<string, { width: number; height: number }>>;
  onWidget: (nodeId: number, index: number, value: unknown) => void;
  onGroup: (index: number, patch: Partial<DocGroup>) => void;
}

/** The document as React Flow's nodes and edges: groups under nodes, reroutes as dots. */
export function useCanvasElements({
  doc,
  info,
  runtime,
  lang,
  selected,
  selectedGroups,
  selectedEdges,
  measured,
  onWidget,
  onGroup,
}: CanvasInputs): { nodes: CanvasNode[]; edges: Edge[] } {
  // React Flow skips nodes whose objects are unchanged, so unchanged nodes keep last render's objects
  // (and React Flow its measurement of them: a new measurement alone makes no new object).
  const nodeCache = useRef(new Map<string, CanvasNode>());
  const nodes = useMemo(() => {
    const prev = nodeCache.current;
    const next = new Map<string, CanvasNode>();
    const out: CanvasNode[] = [];
    const keep = (n: CanvasNode) => {
      next.set(n.id, n);
      out.push(n);
    };
    doc.groups.forEach((g, index) => {
      const id = `g-${index}`;
      const [x, y, width, height] = g.bounding;
      const sel = selectedGroups.has(index);
      const m = measured.current[id];
      const old = prev.get(id);
      if (
        old?.type === 'weftGroup' &&
        old.position.x === x &&
        old.position.y === y &&
        old.width === width &&
        old.height === height &&
        old.selected === sel &&
        old.data.title === g.title &&
        old.data.color === g.color &&
        old.data.onGroup === onGroup
      )
        return keep(old);
      const node: WeftGroupNode = {
        id,
        type: 'weftGroup',
        position: { x, y },
        width,
        height,
        zIndex: 0,
        selected: sel,
        dragHandle: '.weft-group-title',
        className: 'weft-group-node',
        // Only the title bar and resize handles take the pointer: the frame's inside belongs to the canvas.
        style: { pointerEvents: 'none' },
        ...(m ? { measured: m } : {}),
        data: { index, title: g.title, color: g.color, onGroup },
      };
      keep(node);
    });
    for (const n of doc.nodes) {
      const id = String(n.id);
      const sel = selected.has(n.id);
      const m = measured.current[id];
      const old = prev.get(id);
      if (n.type === REROUTE) {
        const type = n.outputs[0]?.type ?? '*';
        if (
          old?.type === 'weftReroute' &&
          old.position.x === n.pos[0] &&
          old.position.y === n.pos[1] &&
          old.selected === sel &&
          old.data.type === type
        ) {
          keep(old);
          continue;
        }
        const node: WeftRerouteNode = {
          id,
          type: 'weftReroute',
          zIndex: 1,
          position: { x: n.pos[0], y: n.pos[1] },
          selected: sel,
          ...(m ? { measured: m } : {}),
          data: { id: n.id, type },
        };
        keep(node);
        continue;
      }
      const ci = n.type === PRIMITIVE ? primitiveEntry(doc, n, info) : info[n.type];
      const rt = runtime[id] ?? NO_RUNTIME;
      const title = n.title ?? nodeTitle(n.type, ci?.display_name, lang);
      if (
        old?.type === 'weft' &&
        old.data.node === n &&
        old.data.info === ci &&
        old.data.runtime === rt &&
        old.data.title === title &&
        old.data.onWidget === onWidget &&
        old.selected === sel
      ) {
        keep(old);
        continue;
      }
      const data: WeftNodeData = { node: n, info: ci, runtime: rt, title, onWidget };
      const node: WeftFlowNode = {
        id,
        type: 'weft',
        zIndex: 1,
        position: { x: n.pos[0], y: n.pos[1] },
        selected: sel,
        ...(m ? { measured: m } : {}),
        ...flagProps(n.flags),
        data,
      };
      keep(node);
    }
    nodeCache.current = next;
    return out;
  }, [doc, info, runtime, onWidget, onGroup, selected, selectedGroups, measured, lang]);

  const edges: Edge[] = useMemo(
    () =>
      doc.links.map(([id, o, os, tgt, ts, type]) => ({
        id: String(id),
        source: String(o),
        sourceHandle: `out-${os}`,
        target: String(tgt),
        targetHandle: `in-${ts}`,
        selected: selectedEdges.has(String(id)),
        reconnectable: 'target' as const,
        style: { stroke: typeColor(type), strokeWidth: selectedEdges.has(String(id)) ? 4 : 2 },
        data: { type },
      })),
    [doc.links, selectedEdges],
  );
  return { nodes, edges };
}
