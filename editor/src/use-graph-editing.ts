import { FRONTEND_ENTRIES, seedPrimitives } from './frontend-nodes.ts';
import type { Connection, Edge, EdgeChange, FinalConnectionState, NodeChange, ReactFlowInstance } from '@xyflow/react';
import { useCallback, useRef, useState, type MouseEvent as ReactMouseEvent, type RefObject } from 'react';
import type { ObjectInfo } from '../../engine/registry/registry.ts';
import {
  addGroup,
  applyPrimitives,
  connect,
  connectError,
  copyNodes,
  createNode,
  createReroute,
  ensureWidgetInput,
  groupBounds,
  groupMembers,
  insertReroute,
  moveGroups,
  pasteNodes,
  PRIMITIVE,
  removeGroups,
  removeLink,
  removeNodes,
  REROUTE,
  rerouteType,
  typesCompatible,
  updateGroup,
  updateNode,
  widgetDefs,
  type Clip,
  type DocGroup,
  type WorkflowDoc,
} from './doc.ts';
import { t, type Lang } from './i18n.ts';
import type { CanvasNode } from './NodeView.tsx';
import { listWidgetsBeforeLink } from './widget-inputs.ts';

/** Where the node search box is open, and the link it will connect the new node to. */
export interface SearchRequest {
  x: number;
  y: number;
  filterType?: string;
  from?: { node: number; slot: number };
}

const DELETE = 'delete';
// How far each further paste at the same spot moves, as ComfyUI's successive pastes do not stack.
const PASTE_STEP = 20;

type SetDoc = (fn: (d: WorkflowDoc) => WorkflowDoc, opts?: { coalesce?: string }) => void;

export interface GraphEditingDeps {
  docRef: RefObject<WorkflowDoc>;
  setDoc: SetDoc;
  seal: () => void;
  info: ObjectInfo;
  lang: Lang;
  notify: (message: string) => void;
  flow: ReactFlowInstance<CanvasNode>;
  canvasRef: RefObject<HTMLDivElement | null>;
  openSearch: (s: SearchRequest) => void;
}

/**
 * Editing the graph on the canvas: selection, moves and resizes, links (connect, reconnect, detach,
 * refusals explained), widgets, groups, reroutes, copy and paste, mute and bypass.
 */
export function useGraphEditing({ docRef, setDoc, seal, info, lang, notify, flow, canvasRef, openSearch }: GraphEditingDeps) {
  const [selected, setSelected] = useState<Set<number>>(new Set());
  const [selectedGroups, setSelectedGroups] = useState<Set<number>>(new Set());
  // Drawn sizes, as React Flow measured them. A ref, not state: React Flow keeps a node's measurement while
  // its node object stays the same, so a measurement needs no render; the canvas reads it when it makes a
  // node object anew. (As state, the measurements of a 500-node open re-rendered every node once more.)
  const measured = useRef<Record<string, { width: number; height: number }>>({});
  const [selectedEdges, setSelectedEdges] = useState<Set<string>>(new Set());

  const onWidget = useCallback(
    (nodeId: number, index: number, value: unknown) => {
      setDoc(
        (d) => {
          const next = updateNode(d, nodeId, (n) => {
            const values = [...(n.widgets_values ?? [])];
            values[index] = value;
            return { ...n, widgets_values: values };
          });
          return next.nodes.some((n) => n.id === nodeId && n.type === PRIMITIVE) ? applyPrimitives(next, info) : next;
          // Typing into one widget is one undo step, as in ComfyUI.
        },
        { coalesce: `widget:${nodeId}:${index}` },
      );
    },
    [setDoc, info],
  );

  const onGroup = useCallback((index: number, patch: Partial<DocGroup>) => setDoc((d) => updateGroup(d, index, patch)), [setDoc]);

  // React Flow reports one deletion as two changes (the links, then the nodes): one undo step takes both.
  const sealDeleteSoon = useCallback(() => window.setTimeout(seal, 0), [seal]);

  const groupDrag = useRef<Map<number, Set<number>> | null>(null);
  const onNodesChange = useCallback(
    (changes: NodeChange<CanvasNode>[]) => {
      const removed = new Set<number>();
      const removedGroups = new Set<number>();
      const moves = new Map<number, [number, number]>();
      const dims: [string, { width: number; height: number }][] = [];
      const groupMoves = new Map<number, [number, number]>();
      const groupResizes = new Map<number, { x?: number; y?: number; w?: number; h?: number }>();
      const nodeWidths = new Map<number, number>();
      const resize = (i: number) => groupResizes.get(i) ?? groupResizes.set(i, {}).get(i)!;
      for (const c of changes) {
        if (c.type === 'add' || c.type === 'replace') continue;
        const group = c.id.startsWith('g-') ? Number(c.id.slice(2)) : undefined;
        if (c.type === 'dimensions' && c.dimensions) {
          dims.push([c.id, c.dimensions]);
          if (group !== undefined && c.resizing)
            Object.assign(resize(group), { w: Math.round(c.dimensions.width), h: Math.round(c.dimensions.height) });
          // A node's corner control resizes its width; its height follows its content.
          else if (group === undefined && c.resizing) nodeWidths.set(Number(c.id), Math.round(c.dimensions.width));
        } else if (c.type === 'position' && c.position) {
          const p: [number, number] = [Math.round(c.position.x), Math.round(c.position.y)];
          // Drags say whether they are dragging; the resizer's position changes do not, and must not carry nodes.
          if (group !== undefined && c.dragging === undefined) Object.assign(resize(group), { x: p[0], y: p[1] });
          else if (group !== undefined) groupMoves.set(group, p);
          else moves.set(Number(c.id), p);
        } else if (c.type === 'remove') {
          if (group !== undefined) removedGroups.add(group);
          else removed.add(Number(c.id));
        }
      }
      // Moving a group moves the nodes inside it, as in ComfyUI: those inside when the drag began,
      // less any the same drag already moves itself (they are selected too).
      if (groupMoves.size) {
        setDoc(
          (d) => {
            const members = (groupDrag.current ??= new Map([...groupMoves.keys()].map((i) => [i, groupMembers(d, i)])));
            for (const set of members.values()) for (const id of moves.keys()) set.delete(id);
            return moveGroups(d, groupMoves, members);
          },
          { coalesce: 'move' },
        );
        if (changes.some((c) => c.type === 'position' && c.dragging === false)) groupDrag.current = null;
      }
      if (groupResizes.size) {
        setDoc(
          (d) => {
            let next = d;
            for (const [i, r] of groupResizes) {
              const g = next.groups[i];
              if (g)
                next = updateGroup(next, i, {
                  bounding: [r.x ?? g.bounding[0], r.y ?? g.bounding[1], r.w ?? g.bounding[2], r.h ?? g.bounding[3]],
                });
            }
            return next;
          },
          { coalesce: 'resize' },
        );
      }
      if (nodeWidths.size)
        setDoc(
          (d) => ({
            ...d,
            nodes: d.nodes.map((n) => (nodeWidths.has(n.id) ? { ...n, size: [nodeWidths.get(n.id)!, n.size[1]] as [number, number] } : n)),
          }),
          { coalesce: 'resize' },
        );
      for (const [id, d] of dims) measured.current[id] = d;
      if (moves.size)
        setDoc((d) => ({ ...d, nodes: d.nodes.map((n) => (moves.has(n.id) ? { ...n, pos: moves.get(n.id)! } : n)) }), { coalesce: 'move' });
      if (removed.size || removedGroups.size) {
        setDoc((d) => removeGroups(removeNodes(d, removed), removedGroups), { coalesce: DELETE });
        sealDeleteSoon();
        if (removedGroups.size) setSelectedGroups(new Set());
      }
      if (changes.some((c) => (c.type === 'position' && c.dragging === false) || (c.type === 'dimensions' && c.resizing === false))) seal();
      const selectChanges = changes.filter((c) => c.type === 'select');
      if (selectChanges.length) {
        const apply = (s: Set<number>, isGroup: boolean) => {
          const next = new Set(s);
          for (const c of selectChanges) {
            if (c.type !== 'select' || c.id.startsWith('g-') !== isGroup) continue;
            const id = Number(isGroup ? c.id.slice(2) : c.id);
            if (c.selected) next.add(id);
            else next.delete(id);
          }
          return next;
        };
        setSelected((s) => apply(s, false));
        setSelectedGroups((s) => apply(s, true));
      }
    },
    [setDoc, seal, sealDeleteSoon],
  );

  const onEdgesChange = useCallback(
    (changes: EdgeChange[]) => {
      const removed = changes.flatMap((c) => (c.type === 'remove' ? [Number(c.id)] : []));
      if (removed.length) {
        setDoc((d) => removed.reduce((x, id) => removeLink(x, id), d), { coalesce: DELETE });
        sealDeleteSoon();
      }
      const select = changes.flatMap((c) => (c.type === 'select' ? [c] : []));
      if (select.length) {
        setSelectedEdges((s) => {
          const next = new Set(s);
          for (const c of select) c.selected ? next.add(c.id) : next.delete(c.id);
          return next;
        });
      }
    },
    [setDoc, sealDeleteSoon],
  );

  /** Why a connection between two handles is refused, or undefined when it is allowed. */
  const connectionProblem = useCallback(
    (c: { source: string; sourceHandle?: string | null; target: string; targetHandle?: string | null }): string | undefined => {
      const d = docRef.current;
      if (!c.sourceHandle?.startsWith('out-') || !(c.targetHandle?.startsWith('in-') || c.targetHandle?.startsWith('w-')))
        return t('wrongDirection', lang);
      const originSlot = Number(c.sourceHandle.slice(4));
      if (c.targetHandle.startsWith('w-')) {
        const name = c.targetHandle.slice(2);
        const o = d.nodes.find((n) => n.id === Number(c.source));
        const tg = d.nodes.find((n) => n.id === Number(c.target));
        const w = tg && info[tg.type] ? widgetDefs(info[tg.type]).find((x) => x.name === name) : undefined;
        if (!o || !w) return 'socket not found';
        const from = o.type === REROUTE ? rerouteType(d, o.id) : (o.outputs[originSlot]?.type ?? '*');
        const to = w.kind === 'COMBO' ? 'COMBO' : w.kind;
        return typesCompatible(from, to) ? undefined : `${from} cannot connect to ${to} (${name})`;
      }
      return connectError(d, Number(c.source), originSlot, Number(c.target), Number(c.targetHandle.slice(3)));
    },
    [docRef, info, lang],
  );

  /** `d` with the connection made (a link to a widget first turns the widget into an input). */
  const withConnection = useCallback(
    (doc0: WorkflowDoc, c: Connection): { doc: WorkflowDoc; error?: string } => {
      let d = doc0;
      let slot: number;
      if (c.targetHandle!.startsWith('w-')) {
        const name = c.targetHandle!.slice(2);
        const target = d.nodes.find((n) => n.id === Number(c.target));
        const w = target && info[target.type] ? widgetDefs(info[target.type]).find((x) => x.name === name) : undefined;
        if (target && info[target.type]) d = listWidgetsBeforeLink(d, target.id, info[target.type]);
        const ensured = ensureWidgetInput(d, Number(c.target), name, w?.kind === 'COMBO' ? 'COMBO' : (w?.kind ?? '*'));
        d = ensured.doc;
        slot = ensured.slot;
      } else slot = Number(c.targetHandle!.slice(3));
      const r = connect(d, Number(c.source), Number(c.sourceHandle!.slice(4)), Number(c.target), slot);
      if (r.error) return r;
      return {
        doc: d.nodes.some((n) => n.id === Number(c.source) && n.type === PRIMITIVE)
          ? applyPrimitives(seedPrimitives(r.doc, info), info)
          : r.doc,
      };
    },
    [info],
  );

  const onConnect = useCallback(
    (c: Connection) => {
      const r = withConnection(docRef.current, c);
      if (r.error) notify(r.error);
      else setDoc(() => r.doc);
    },
    [docRef, notify, setDoc, withConnection],
  );

  /** When a link was dropped on a socket that refused it, says why (and returns true). */
  const explainRefusal = useCallback(
    (state: FinalConnectionState): boolean => {
      if (!state.toHandle || !state.fromHandle) return false;
      const [src, tgt] = state.fromHandle.type === 'source' ? [state.fromHandle, state.toHandle] : [state.toHandle, state.fromHandle];
      notify(
        connectionProblem({ source: src.nodeId, sourceHandle: src.id, target: tgt.nodeId, targetHandle: tgt.id }) ??
          t('wrongDirection', lang),
      );
      return true;
    },
    [connectionProblem, notify, lang],
  );

  // Dragging a link's input end to another input moves it; dropping it on empty canvas detaches it, as in ComfyUI.
  const reconnected = useRef(false);
  const onReconnectStart = useCallback(() => {
    reconnected.current = false;
  }, []);
  const onReconnect = useCallback(
    (old: Edge, c: Connection) => {
      reconnected.current = true;
      const r = withConnection(removeLink(docRef.current, Number(old.id)), c);
      if (r.error) notify(r.error);
      else setDoc(() => r.doc);
    },
    [docRef, notify, setDoc, withConnection],
  );
  const onReconnectEnd = useCallback(
    (_e: MouseEvent | TouchEvent, edge: Edge, _type: unknown, state: FinalConnectionState) => {
      if (reconnected.current || explainRefusal(state)) return;
      setDoc((d) => removeLink(d, Number(edge.id)));
    },
    [explainRefusal, setDoc],
  );

  const onConnectEnd = useCallback(
    (event: MouseEvent | TouchEvent, state: FinalConnectionState) => {
      // Dropped on a socket that refused the link: say why instead of opening the search box.
      if (state.isValid || !state.fromHandle || !state.fromNode || explainRefusal(state)) return;
      const p = 'clientX' in event ? event : event.changedTouches[0];
      const from = Number(state.fromNode.id);
      const slot = state.fromHandle.id ? Number(state.fromHandle.id.split('-')[1]) : 0;
      const n = docRef.current.nodes.find((x) => x.id === from);
      if (!n || state.fromHandle.id?.startsWith('w-')) return;
      // A link dragged off a connected input and dropped on empty canvas is detached, as in ComfyUI.
      const held = state.fromHandle.type === 'target' ? n.inputs[slot]?.link : null;
      if (held !== null && held !== undefined) {
        setDoc((d) => removeLink(d, held));
        return;
      }
      const filterType =
        state.fromHandle.type === 'source'
          ? n.type === REROUTE
            ? rerouteType(docRef.current, n.id)
            : n.outputs[slot]?.type
          : n.inputs[slot]?.type;
      openSearch({
        x: p.clientX,
        y: p.clientY,
        filterType: filterType === '*' ? undefined : filterType,
        from: state.fromHandle.type === 'source' ? { node: from, slot } : undefined,
      });
    },
    [docRef, explainRefusal, openSearch, setDoc],
  );

  /** A group around the selected nodes, or an empty one in the middle of the view. */
  const createGroup = useCallback(() => {
    const d = docRef.current;
    const rects = d.nodes
      .filter((n) => selected.has(n.id))
      .map((n) => {
        const m = measured.current[String(n.id)];
        return { x: n.pos[0], y: n.pos[1], w: m?.width ?? n.size[0], h: m?.height ?? n.size[1] };
      });
    let bounding: [number, number, number, number];
    if (rects.length) bounding = groupBounds(rects);
    else {
      const box = canvasRef.current?.getBoundingClientRect();
      const c = flow.screenToFlowPosition({ x: (box?.left ?? 0) + (box?.width ?? 800) / 2, y: (box?.top ?? 0) + (box?.height ?? 600) / 2 });
      bounding = [Math.round(c.x - 200), Math.round(c.y - 150), 400, 300];
    }
    setDoc((x) => addGroup(x, bounding));
  }, [docRef, canvasRef, selected, flow, setDoc]);

  /** Ids restart with every document: selection and sizes of the last one must not carry over. */
  const resetSelection = useCallback(() => {
    setSelected(new Set());
    setSelectedGroups(new Set());
    setSelectedEdges(new Set());
    measured.current = {};
  }, []);

  const clipboard = useRef<Clip & { incoming: Clip['links'] }>({ nodes: [], links: [], incoming: [] });
  // Where the cursor is on the canvas (screen coordinates), and how often the clip was pasted there.
  const cursor = useRef<{ x: number; y: number } | null>(null);
  const pastes = useRef<{ x: number; y: number; count: number } | null>(null);
  const trackCursor = useCallback((x: number, y: number) => {
    cursor.current = { x, y };
  }, []);
  const copy = useCallback(() => {
    const d = docRef.current;
    // Links from outside into the copied nodes, which Ctrl+Shift+V keeps.
    const incoming = d.links.filter((l) => selected.has(l[3]) && !selected.has(l[1]));
    clipboard.current = { ...copyNodes(d, selected), incoming };
    pastes.current = null;
  }, [docRef, selected]);
  /** Pastes at the cursor, each further paste at the same spot shifted down and right; `withLinks` keeps the links into the copies. */
  const paste = useCallback(
    (withLinks = false) => {
      const clip = clipboard.current;
      if (!clip.nodes.length) return;
      const at = cursor.current;
      const last = pastes.current;
      const count = last && at && last.x === at.x && last.y === at.y ? last.count + 1 : last && !at ? last.count + 1 : 0;
      pastes.current = { x: at?.x ?? 0, y: at?.y ?? 0, count };
      const step = PASTE_STEP * count;
      let offset: [number, number];
      if (at) {
        const p = flow.screenToFlowPosition(at);
        const minX = Math.min(...clip.nodes.map((n) => n.pos[0]));
        const minY = Math.min(...clip.nodes.map((n) => n.pos[1]));
        offset = [Math.round(p.x - minX) + step, Math.round(p.y - minY) + step];
      } else offset = [40 + step, 40 + step];
      const r = pasteNodes(docRef.current, clip, offset);
      let next = r.doc;
      if (withLinks) {
        const idOf = new Map(clip.nodes.map((n, i) => [n.id, r.ids[i]]));
        for (const [, o, os, tgt, ts] of clip.incoming)
          if (next.nodes.some((n) => n.id === o)) next = connect(next, o, os, idOf.get(tgt)!, ts).doc;
      }
      setDoc(() => next);
      // The copies become the selection, so they can be dragged away from the originals at once.
      setSelected(new Set(r.ids));
    },
    [docRef, flow, setDoc],
  );

  /** Alt+C: collapses the selected nodes to their title bar, or expands them when all were collapsed. */
  const toggleCollapsed = useCallback(() => {
    setDoc((d) => {
      const chosen = d.nodes.filter((n) => selected.has(n.id));
      if (!chosen.length) return d;
      const collapse = !chosen.every((n) => n.flags?.collapsed);
      return {
        ...d,
        nodes: d.nodes.map((n) => {
          if (!selected.has(n.id)) return n;
          const rest = { ...n.flags };
          delete rest.collapsed;
          return { ...n, flags: collapse ? { ...rest, collapsed: true } : rest };
        }),
      };
    });
  }, [selected, setDoc]);

  const selectAll = useCallback(() => setSelected(new Set(docRef.current.nodes.map((n) => n.id))), [docRef]);

  /** Mode 2 mutes, mode 4 bypasses; a second toggle sets the selected nodes back to always (0). */
  const toggleMode = useCallback(
    (mode: 2 | 4) =>
      setDoc((d) => ({ ...d, nodes: d.nodes.map((n) => (selected.has(n.id) ? { ...n, mode: n.mode === mode ? 0 : mode } : n)) })),
    [selected, setDoc],
  );

  const onEdgeDoubleClick = useCallback(
    (e: ReactMouseEvent, edge: Edge) => {
      const p = flow.screenToFlowPosition({ x: e.clientX, y: e.clientY });
      setDoc((d) => insertReroute(d, Number(edge.id), [Math.round(p.x - 12), Math.round(p.y - 8)]));
    },
    [flow, setDoc],
  );

  /** Adds the class picked in the search box where it was opened, linked to the dragged output if any. */
  const addFromSearch = useCallback(
    (search: SearchRequest, classType: string) => {
      const pos = flow.screenToFlowPosition({ x: search.x, y: search.y });
      setDoc((d) => {
        const at: [number, number] = [Math.round(pos.x), Math.round(pos.y)];
        let next =
          classType === REROUTE ? createReroute(d, at) : createNode(d, classType, info[classType] ?? FRONTEND_ENTRIES[classType], at);
        if (search.from) {
          const created = next.nodes[next.nodes.length - 1];
          const slot = created.inputs.findIndex((i) => !search.filterType || i.type === '*' || typesCompatible(search.filterType, i.type));
          if (slot >= 0) next = connect(next, search.from.node, search.from.slot, created.id, slot).doc;
        }
        return next;
      });
    },
    [flow, info, setDoc],
  );

  return {
    selected,
    selectedGroups,
    selectedEdges,
    measured,
    resetSelection,
    onWidget,
    onGroup,
    onNodesChange,
    onEdgesChange,
    connectionProblem,
    withConnection,
    onConnect,
    onConnectEnd,
    onReconnectStart,
    onReconnect,
    onReconnectEnd,
    onEdgeDoubleClick,
    createGroup,
    copy,
    paste,
    trackCursor,
    selectAll,
    toggleCollapsed,
    toggleMode,
    addFromSearch,
  };
}
