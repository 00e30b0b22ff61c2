import {
  Background,
  Controls,
  MiniMap,
  ReactFlow,
  ReactFlowProvider,
  useReactFlow,
  useStore,
  type Connection,
  type Edge,
  type FinalConnectionState,
  type NodeChange,
  type EdgeChange,
} from '@xyflow/react';
import '@xyflow/react/dist/style.css';
import './styles.css';
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { convertWorkflowToPrompt } from '../../engine/graph/convert.ts';
import { flattenForEditor } from '../../engine/graph/convert-expand.ts';
import type { ObjectInfo, ObjectInfoEntry } from '../../engine/registry/registry.ts';
import { ApiClient, type HistoryItem, type ImageRef } from './api.ts';
import {
  addGroup,
  applyControlAfterGenerate,
  applyPrimitives,
  connect,
  connectError,
  copyNodes,
  pasteNodes,
  type Clip,
  createNode,
  createReroute,
  emptyDoc,
  groupBounds,
  groupMembers,
  insertReroute,
  moveGroups,
  ensureWidgetInput,
  PRIMITIVE,
  primitiveEntry,
  removeGroups,
  REROUTE,
  rerouteType,
  typesCompatible,
  updateGroup,
  widgetDefs,
  missingClasses,
  normalizeDoc,
  removeLink,
  removeNodes,
  updateNode,
  type DocGroup,
  type WorkflowDoc,
} from './doc.ts';
import { nodeTitle, t, type Lang } from './i18n.ts';
import {
  GroupView,
  NodeView,
  RerouteView,
  typeColor,
  type CanvasNode,
  type NodeRuntime,
  type WeftFlowNode,
  type WeftGroupNode,
  type WeftNodeData,
  type WeftRerouteNode,
} from './NodeView.tsx';
import { readWorkflowFromFile } from './files.ts';
import { SearchBox } from './SearchBox.tsx';
import { useHistory } from './history.ts';

const api = new ApiClient();
const nodeTypes = { weft: NodeView, weftGroup: GroupView, weftReroute: RerouteView };
const DRAFT_KEY = 'weft.draft';
// One shared empty runtime, so nodes without runtime state keep equal props between renders.
const NO_RUNTIME: NodeRuntime = {};
// Zoomed out, widgets (and further out, titles and sockets) are unreadable; not painting them keeps
// panning a big graph smooth. A level, not the zoom, so the editor re-renders only when it changes.
const detailSelector = (s: { transform: [number, number, number] }) =>
  s.transform[2] < 0.2 ? 'minimal-detail' : s.transform[2] < 0.4 ? 'low-detail' : '';

/** The search box offers the frontend-only reroute beside the server's classes. */
const REROUTE_ENTRY: ObjectInfoEntry = {
  input: { required: { '': ['*'] } },
  input_order: { required: [''] },
  is_input_list: false,
  output: ['*'],
  output_is_list: [false],
  output_name: [''],
  name: REROUTE,
  display_name: 'Reroute',
  description: 'A point that routes a link',
  python_module: 'frontend',
  category: 'utils',
  output_node: false,
  has_intermediate_output: false,
  search_aliases: ['reroute', 'dot'],
};

interface QueueState {
  running: string[];
  pending: string[];
}

function Editor() {
  const [lang, setLang] = useState<Lang>(() => (localStorage.getItem('weft.lang') as Lang) ?? 'en');
  const [info, setInfo] = useState<ObjectInfo>({});
  const { doc, setDoc, replaceDoc, undo, redo, seal } = useHistory(emptyDoc());
  const [name, setName] = useState<string | null>(null);
  const [modified, setModified] = useState<number | undefined>(undefined);
  const [runtime, setRuntime] = useState<Record<string, NodeRuntime>>({});
  const [toast, setToast] = useState<string | null>(null);
  const [missing, setMissing] = useState<{ class_type: string; node_ids: number[] }[] | null>(null);
  const [search, setSearch] = useState<{ x: number; y: number; filterType?: string; from?: { node: number; slot: number } } | null>(null);
  const [connected, setConnected] = useState(false);
  const [queue, setQueue] = useState<QueueState>({ running: [], pending: [] });
  const [gallery, setGallery] = useState<{ src: string; promptId: string }[]>([]);
  const [panel, setPanel] = useState<'none' | 'workflows' | 'queue' | 'gallery' | 'help'>('none');
  const [history, setHistory] = useState<[string, HistoryItem][]>([]);
  const [viewWorkflow, setViewWorkflow] = useState<string | null>(null);
  const [workflowList, setWorkflowList] = useState<{ name: string; template?: boolean }[]>([]);
  const [draftOffer, setDraftOffer] = useState<WorkflowDoc | null>(null);
  const [bigImage, setBigImage] = useState<{ src: string; promptId: string } | null>(null);
  const clipboard = useRef<Clip>({ nodes: [], links: [] });
  const flow = useReactFlow<CanvasNode>();
  const detail = useStore(detailSelector);
  const canvasRef = useRef<HTMLDivElement>(null);
  const docRef = useRef(doc);
  docRef.current = doc;

  const notify = useCallback((msg: string) => {
    setToast(msg);
    window.setTimeout(() => setToast((m) => (m === msg ? null : m)), 4000);
  }, []);

  useEffect(() => {
    localStorage.setItem('weft.lang', lang);
  }, [lang]);

  useEffect(() => {
    api.objectInfo().then(setInfo, (e: Error) => notify(e.message));
    const offs = [
      api.on('connection', setConnected),
      api.on('message', (msg) => onServerMessage(msg.type, msg.data)),
      api.on('preview', (blob, nodeId) => {
        const url = URL.createObjectURL(blob);
        setRuntime((r) => {
          const id = nodeId ?? Object.keys(r).find((k) => r[k].running);
          if (!id) return r;
          if (r[id]?.preview) URL.revokeObjectURL(r[id].preview!);
          return { ...r, [id]: { ...r[id], preview: url } };
        });
      }),
    ];
    api.connect();
    const draft = localStorage.getItem(DRAFT_KEY);
    if (draft) {
      try {
        const d = JSON.parse(draft) as WorkflowDoc;
        if (d.nodes?.length) setDraftOffer(d);
      } catch {
        localStorage.removeItem(DRAFT_KEY);
      }
    }
    return () => {
      offs.forEach((f) => f());
      api.close();
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  useEffect(() => {
    if (doc.nodes.length) localStorage.setItem(DRAFT_KEY, JSON.stringify(doc));
  }, [doc]);

  const refreshHistory = useCallback(() => {
    api.history(50).then(
      (h) => setHistory(Object.entries(h).reverse()),
      () => {},
    );
  }, []);

  const onServerMessage = useCallback(
    (type: string, data: Record<string, unknown>) => {
      const node = data.node as string | null | undefined;
      switch (type) {
        case 'status':
          api.queue().then(
            (q) => setQueue({ running: q.queue_running.map((i) => String(i[1])), pending: q.queue_pending.map((i) => String(i[1])) }),
            () => {},
          );
          refreshHistory();
          break;
        case 'execution_start':
          setRuntime((r) =>
            Object.fromEntries(Object.entries(r).map(([k, v]) => [k, { ...v, running: false, progress: undefined, errors: undefined }])),
          );
          break;
        case 'executing':
          setRuntime((r) => {
            const next: Record<string, NodeRuntime> = {};
            for (const [k, v] of Object.entries(r)) next[k] = { ...v, running: false, progress: undefined };
            if (node) next[node] = { ...next[node], running: true };
            return next;
          });
          break;
        case 'progress':
          if (node) setRuntime((r) => ({ ...r, [node]: { ...r[node], progress: { value: Number(data.value), max: Number(data.max) } } }));
          break;
        case 'executed': {
          const out = data.output as { images?: ImageRef[] } | null;
          if (node && out?.images) {
            const urls = out.images.map((i) => api.viewUrl(i));
            setRuntime((r) => ({ ...r, [node]: { ...r[node], images: urls, preview: undefined } }));
            setGallery((g) => [...urls.map((src) => ({ src, promptId: String(data.prompt_id) })), ...g].slice(0, 200));
          }
          break;
        }
        case 'execution_error':
          notify(`${String(data.node_type)} #${String(data.node_id)}: ${String(data.exception_message)}`);
          setRuntime((r) => ({
            ...r,
            [String(data.node_id)]: { ...r[String(data.node_id)], running: false, errors: [{ message: String(data.exception_message) }] },
          }));
          break;
        case 'execution_interrupted':
          notify('interrupted');
          break;
      }
    },
    [notify, refreshHistory],
  );

  const [selected, setSelected] = useState<Set<number>>(new Set());
  const [selectedGroups, setSelectedGroups] = useState<Set<number>>(new Set());
  const [measured, setMeasured] = useState<Record<string, { width: number; height: number }>>({});
  const [selectedEdges, setSelectedEdges] = useState<Set<string>>(new Set());

  const openDoc = useCallback(
    (raw: WorkflowDoc, docName: string | null, mod?: number) => {
      // Subgraphs and group nodes open flattened: their inner nodes become nodes of the one graph.
      const d = normalizeDoc(flattenForEditor(raw, info));
      replaceDoc(d);
      setName(docName);
      setModified(mod);
      setRuntime({});
      // Ids restart with every document: selection and sizes of the last one must not carry over.
      setSelected(new Set());
      setSelectedGroups(new Set());
      setSelectedEdges(new Set());
      setMeasured({});
      const miss = missingClasses(d, info);
      setMissing(miss.length ? miss : null);
      window.setTimeout(() => flow.fitView({ padding: 0.1 }), 50);
    },
    [info, flow, replaceDoc],
  );

  const onWidget = useCallback(
    (nodeId: number, index: number, value: unknown) => {
      setDoc((d) => {
        const next = updateNode(d, nodeId, (n) => {
          const values = [...(n.widgets_values ?? [])];
          values[index] = value;
          return { ...n, widgets_values: values };
        });
        return next.nodes.some((n) => n.id === nodeId && n.type === PRIMITIVE) ? applyPrimitives(next, info) : next;
      });
    },
    [setDoc, info],
  );

  const onGroup = useCallback((index: number, patch: Partial<DocGroup>) => setDoc((d) => updateGroup(d, index, patch)), [setDoc]);

  // React Flow skips nodes whose objects are unchanged, so unchanged nodes keep last render's objects.
  const nodeCache = useRef(new Map<string, CanvasNode>());
  const rfNodes = useMemo(() => {
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
      const m = measured[id];
      const old = prev.get(id);
      if (
        old?.type === 'weftGroup' &&
        old.position.x === x &&
        old.position.y === y &&
        old.width === width &&
        old.height === height &&
        old.selected === sel &&
        old.measured === m &&
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
      const m = measured[id];
      const old = prev.get(id);
      if (n.type === REROUTE) {
        const type = n.outputs[0]?.type ?? '*';
        if (
          old?.type === 'weftReroute' &&
          old.position.x === n.pos[0] &&
          old.position.y === n.pos[1] &&
          old.selected === sel &&
          old.measured === m &&
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
        old.selected === sel &&
        old.measured === m
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
        data,
      };
      keep(node);
    }
    nodeCache.current = next;
    return out;
  }, [doc, info, runtime, onWidget, onGroup, selected, selectedGroups, measured, lang]);

  const searchInfo = useMemo(() => ({ ...info, [REROUTE]: REROUTE_ENTRY }), [info]);

  const rfEdges: Edge[] = useMemo(
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

  const groupDrag = useRef<Map<number, Set<number>> | null>(null);
  const onNodesChange = useCallback(
    (changes: NodeChange<CanvasNode>[]) => {
      const removed = new Set<number>();
      const removedGroups = new Set<number>();
      const moves = new Map<number, [number, number]>();
      const dims: [string, { width: number; height: number }][] = [];
      const groupMoves = new Map<number, [number, number]>();
      const groupResizes = new Map<number, { x?: number; y?: number; w?: number; h?: number }>();
      const resize = (i: number) => groupResizes.get(i) ?? groupResizes.set(i, {}).get(i)!;
      for (const c of changes) {
        if (c.type === 'add' || c.type === 'replace') continue;
        const group = c.id.startsWith('g-') ? Number(c.id.slice(2)) : undefined;
        if (c.type === 'dimensions' && c.dimensions) {
          dims.push([c.id, c.dimensions]);
          if (group !== undefined && c.resizing)
            Object.assign(resize(group), { w: Math.round(c.dimensions.width), h: Math.round(c.dimensions.height) });
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
      if (dims.length) setMeasured((m) => ({ ...m, ...Object.fromEntries(dims) }));
      if (moves.size)
        setDoc((d) => ({ ...d, nodes: d.nodes.map((n) => (moves.has(n.id) ? { ...n, pos: moves.get(n.id)! } : n)) }), { coalesce: 'move' });
      if (removed.size || removedGroups.size) {
        setDoc((d) => removeGroups(removeNodes(d, removed), removedGroups));
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
    [setDoc, seal],
  );

  const onEdgesChange = useCallback(
    (changes: EdgeChange[]) => {
      const removed = changes.flatMap((c) => (c.type === 'remove' ? [Number(c.id)] : []));
      if (removed.length) setDoc((d) => removed.reduce((x, id) => removeLink(x, id), d));
      const select = changes.flatMap((c) => (c.type === 'select' ? [c] : []));
      if (select.length) {
        setSelectedEdges((s) => {
          const next = new Set(s);
          for (const c of select) c.selected ? next.add(c.id) : next.delete(c.id);
          return next;
        });
      }
    },
    [setDoc],
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
    [info, lang],
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
        const ensured = ensureWidgetInput(d, Number(c.target), name, w?.kind === 'COMBO' ? 'COMBO' : (w?.kind ?? '*'));
        d = ensured.doc;
        slot = ensured.slot;
      } else slot = Number(c.targetHandle!.slice(3));
      const r = connect(d, Number(c.source), Number(c.sourceHandle!.slice(4)), Number(c.target), slot);
      if (r.error) return r;
      return { doc: d.nodes.some((n) => n.id === Number(c.source) && n.type === PRIMITIVE) ? applyPrimitives(r.doc, info) : r.doc };
    },
    [info],
  );

  const onConnect = useCallback(
    (c: Connection) => {
      const r = withConnection(docRef.current, c);
      if (r.error) notify(r.error);
      else setDoc(() => r.doc);
    },
    [notify, setDoc, withConnection],
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
  const onReconnect = useCallback(
    (old: Edge, c: Connection) => {
      reconnected.current = true;
      const r = withConnection(removeLink(docRef.current, Number(old.id)), c);
      if (r.error) notify(r.error);
      else setDoc(() => r.doc);
    },
    [notify, setDoc, withConnection],
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
      setSearch({
        x: p.clientX,
        y: p.clientY,
        filterType: filterType === '*' ? undefined : filterType,
        from: state.fromHandle.type === 'source' ? { node: from, slot } : undefined,
      });
    },
    [explainRefusal, setDoc],
  );

  /** A group around the selected nodes, or an empty one in the middle of the view. */
  const createGroup = useCallback(() => {
    const d = docRef.current;
    const rects = d.nodes
      .filter((n) => selected.has(n.id))
      .map((n) => {
        const m = measured[String(n.id)];
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
  }, [selected, measured, flow, setDoc]);

  const queuePrompt = useCallback(async () => {
    const d = applyPrimitives(docRef.current, info);
    const conv = convertWorkflowToPrompt(d, info);
    if (conv.missing.length) {
      setMissing(conv.missing.map((m) => ({ class_type: m.class_type, node_ids: m.node_ids.map(Number) })));
      return;
    }
    try {
      await api.queuePrompt(conv.prompt, d);
      setRuntime((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, { ...v, errors: undefined }])));
      setDoc((x) => applyControlAfterGenerate(x, info));
    } catch (e) {
      const body = (
        e as {
          body?: {
            error?: { message?: string };
            node_errors?: Record<string, { errors: { message: string; details: string; extra_info?: { input_name?: string } }[] }>;
          };
        }
      ).body;
      if (body?.node_errors) {
        const next: Record<string, NodeRuntime> = {};
        for (const [id, ne] of Object.entries(body.node_errors)) {
          next[id] = {
            errors: ne.errors.map((er) => ({
              input: er.extra_info?.input_name,
              message: `${er.message}${er.details ? `: ${er.details}` : ''}`,
            })),
          };
        }
        setRuntime((r) => ({ ...r, ...next }));
      }
      notify(body?.error?.message ?? (e as Error).message);
    }
  }, [info, notify, setDoc]);

  const refreshWorkflows = useCallback(async () => {
    try {
      setWorkflowList(await api.workflowOp<{ name: string; template?: boolean }[]>('workflow_list'));
    } catch (e) {
      notify((e as Error).message);
    }
  }, [notify]);

  /** Rename or delete a saved workflow, then refresh the list; failures become a notice. */
  const workflowFileOp = useCallback(
    async (op: 'workflow_rename' | 'workflow_delete', data: Record<string, unknown>, done: () => void) => {
      try {
        await api.workflowOp(op, data);
        done();
      } catch (e) {
        notify((e as Error).message);
      }
      await refreshWorkflows();
    },
    [notify, refreshWorkflows],
  );

  const loadNamed = useCallback(
    async (wfName: string, template?: boolean) => {
      const r = await api.workflowOp<{ workflow: WorkflowDoc; modified?: number }>('workflow_load', { name: wfName, template });
      openDoc(r.workflow, template ? null : wfName, r.modified);
      setPanel('none');
    },
    [openDoc],
  );

  const save = useCallback(
    async (asNew: boolean) => {
      let target = name;
      if (asNew || !target) {
        target = window.prompt(t('name', lang), target ?? 'workflow.json');
        if (!target) return;
        if (!target.endsWith('.json')) target += '.json';
      }
      try {
        const r = await api.workflowOp<{ modified: number }>('workflow_save', {
          name: target,
          workflow: docRef.current,
          overwrite: !asNew && target === name,
          expectedModified: !asNew && target === name ? modified : undefined,
        });
        setName(target);
        setModified(r.modified);
        notify(`${t('save', lang)}: ${target}`);
      } catch (e) {
        notify((e as Error).message);
      }
    },
    [name, modified, lang, notify],
  );

  const download = useCallback((data: unknown, file: string) => {
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' }));
    a.download = file;
    a.click();
  }, []);

  const openFile = useCallback(
    async (file: File) => {
      try {
        const wf = await readWorkflowFromFile(file, info);
        openDoc(wf, null);
      } catch (e) {
        notify(`${file.name}: ${(e as Error).message}`);
      }
    },
    [info, openDoc, notify],
  );

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const tag = (e.target as HTMLElement).tagName;
      const inField = tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT';
      const mod = e.ctrlKey || e.metaKey;
      if (mod && e.key === 'Enter') {
        e.preventDefault();
        // A focused node would also take the Enter as "toggle my selection" (Ctrl = multi-select).
        e.stopPropagation();
        void queuePrompt();
      } else if (inField) {
        return;
      } else if (mod && e.key.toLowerCase() === 'z' && !e.shiftKey) {
        e.preventDefault();
        undo();
      } else if ((mod && e.key.toLowerCase() === 'y') || (mod && e.shiftKey && e.key.toLowerCase() === 'z')) {
        e.preventDefault();
        redo();
      } else if (mod && e.key.toLowerCase() === 's') {
        e.preventDefault();
        void save(false);
      } else if (mod && e.key.toLowerCase() === 'c') {
        clipboard.current = copyNodes(docRef.current, selected);
      } else if (mod && e.key.toLowerCase() === 'v') {
        const clip = clipboard.current;
        if (clip.nodes.length) {
          const r = pasteNodes(docRef.current, clip, [40, 40]);
          setDoc(() => r.doc);
          // The copies become the selection, so they can be dragged away from the originals at once.
          setSelected(new Set(r.ids));
        }
      } else if (mod && e.key.toLowerCase() === 'm') {
        e.preventDefault();
        setDoc((d) => ({ ...d, nodes: d.nodes.map((n) => (selected.has(n.id) ? { ...n, mode: n.mode === 2 ? 0 : 2 } : n)) }));
      } else if (mod && e.key.toLowerCase() === 'b') {
        e.preventDefault();
        setDoc((d) => ({ ...d, nodes: d.nodes.map((n) => (selected.has(n.id) ? { ...n, mode: n.mode === 4 ? 0 : 4 } : n)) }));
      } else if (mod && e.key.toLowerCase() === 'g') {
        e.preventDefault();
        createGroup();
      } else if (e.key === '.') {
        void flow.fitView({ padding: 0.1 });
      } else if (e.key === 'Escape') {
        setSearch(null);
        setPanel('none');
        setViewWorkflow(null);
        setBigImage(null);
      }
    };
    window.addEventListener('keydown', onKey, true);
    return () => window.removeEventListener('keydown', onKey, true);
  }, [queuePrompt, undo, redo, save, selected, setDoc, flow, createGroup]);

  return (
    <div
      className="weft-app"
      onDragOver={(e) => e.preventDefault()}
      onDrop={(e) => {
        e.preventDefault();
        const f = e.dataTransfer.files[0];
        if (f) void openFile(f);
      }}
    >
      <header className="weft-toolbar">
        <strong>Weft</strong>
        <span className="doc-name" data-testid="doc-name">
          {name ?? 'untitled'}
        </span>
        <button data-testid="btn-new" onClick={() => openDoc(emptyDoc(), null)}>
          {t('new', lang)}
        </button>
        <button
          data-testid="btn-workflows"
          onClick={() => {
            setPanel(panel === 'workflows' ? 'none' : 'workflows');
            void refreshWorkflows();
          }}
        >
          {t('workflows', lang)}
        </button>
        <label className="file-btn">
          {t('open', lang)}
          <input
            data-testid="file-input"
            type="file"
            accept=".json,.png,application/json,image/png"
            onChange={(e) => e.target.files?.[0] && void openFile(e.target.files[0])}
          />
        </label>
        <button data-testid="btn-save" onClick={() => void save(false)}>
          {t('save', lang)}
        </button>
        <button data-testid="btn-save-as" onClick={() => void save(true)}>
          {t('saveAs', lang)}
        </button>
        <button data-testid="btn-group" title="Ctrl+G" onClick={createGroup}>
          {t('group', lang)}
        </button>
        <button data-testid="btn-export" onClick={() => download(doc, name ?? 'workflow.json')}>
          {t('exportJson', lang)}
        </button>
        <button
          data-testid="btn-export-api"
          onClick={() =>
            download(
              convertWorkflowToPrompt(applyPrimitives(doc, info), info).prompt,
              (name ?? 'workflow').replace(/\.json$/, '') + '_api.json',
            )
          }
        >
          {t('exportApi', lang)}
        </button>
        <span className="spacer" />
        <span className={connected ? 'conn ok' : 'conn'} data-testid="connection">
          {connected ? t('connected', lang) : t('disconnected', lang)}
        </span>
        <button
          data-testid="btn-queue-panel"
          onClick={() => {
            setPanel(panel === 'queue' ? 'none' : 'queue');
            refreshHistory();
          }}
        >
          {t('queuePanel', lang)} ({queue.running.length + queue.pending.length})
        </button>
        <button data-testid="btn-gallery" onClick={() => setPanel(panel === 'gallery' ? 'none' : 'gallery')}>
          {t('gallery', lang)}
        </button>
        <button data-testid="btn-interrupt" onClick={() => void api.interrupt()}>
          {t('interrupt', lang)}
        </button>
        <button className="primary" data-testid="btn-queue" onClick={() => void queuePrompt()}>
          {t('queue', lang)}
        </button>
        <button data-testid="btn-help" onClick={() => setPanel(panel === 'help' ? 'none' : 'help')}>
          ?
        </button>
        <select data-testid="lang" value={lang} onChange={(e) => setLang(e.target.value as Lang)}>
          <option value="en">English</option>
          <option value="zh">简体中文</option>
        </select>
      </header>
      <div
        ref={canvasRef}
        className={detail ? `weft-canvas low-detail ${detail}` : 'weft-canvas'}
        onDoubleClick={(e) => {
          if ((e.target as HTMLElement).closest('.react-flow__node, .react-flow__edge, .react-flow__panel, .react-flow__minimap')) return;
          setSearch({ x: e.clientX, y: e.clientY });
        }}
      >
        <ReactFlow
          nodes={rfNodes}
          edges={rfEdges}
          nodeTypes={nodeTypes}
          onNodesChange={onNodesChange}
          onEdgesChange={onEdgesChange}
          onConnect={onConnect}
          onConnectEnd={onConnectEnd}
          onReconnectStart={() => {
            reconnected.current = false;
          }}
          onReconnect={onReconnect}
          onReconnectEnd={onReconnectEnd}
          isValidConnection={(c) => connectionProblem(c) === undefined}
          onEdgeDoubleClick={(e, edge) => {
            const p = flow.screenToFlowPosition({ x: e.clientX, y: e.clientY });
            setDoc((d) => insertReroute(d, Number(edge.id), [Math.round(p.x - 12), Math.round(p.y - 8)]));
          }}
          zoomOnDoubleClick={false}
          deleteKeyCode={['Delete', 'Backspace']}
          multiSelectionKeyCode={['Shift', 'Control', 'Meta']}
          minZoom={0.05}
          onlyRenderVisibleElements
          fitView
          colorMode="dark"
        >
          <Background />
          <Controls />
          <MiniMap pannable zoomable nodeColor="#5a5a5a" maskColor="#0009" />
        </ReactFlow>
      </div>
      {search && (
        <SearchBox
          info={searchInfo}
          lang={lang}
          filterType={search.filterType}
          onClose={() => setSearch(null)}
          onPick={(classType) => {
            const pos = flow.screenToFlowPosition({ x: search.x, y: search.y });
            setDoc((d) => {
              const at: [number, number] = [Math.round(pos.x), Math.round(pos.y)];
              let next = classType === REROUTE ? createReroute(d, at) : createNode(d, classType, info[classType], at);
              if (search.from) {
                const created = next.nodes[next.nodes.length - 1];
                const slot = created.inputs.findIndex(
                  (i) => !search.filterType || i.type === '*' || typesCompatible(search.filterType, i.type),
                );
                if (slot >= 0) next = connect(next, search.from.node, search.from.slot, created.id, slot).doc;
              }
              return next;
            });
            setSearch(null);
          }}
        />
      )}
      {panel === 'workflows' && (
        <aside className="panel" data-testid="panel-workflows">
          <h3>{t('workflows', lang)}</h3>
          <ul>
            {workflowList.map((w) => (
              <li key={`${w.template ? 't' : 'u'}:${w.name}`}>
                <button data-testid={`wf-${w.template ? 'template' : 'user'}-${w.name}`} onClick={() => void loadNamed(w.name, w.template)}>
                  {w.template ? `${t('templates', lang)}: ` : ''}
                  {w.name}
                </button>
                {!w.template && (
                  <>
                    <button
                      data-testid={`wf-rename-${w.name}`}
                      onClick={() => {
                        let to = window.prompt(t('rename', lang), w.name);
                        if (!to || to === w.name) return;
                        if (!to.endsWith('.json')) to += '.json';
                        const target = to;
                        void workflowFileOp('workflow_rename', { name: w.name, to: target }, () => {
                          if (name === w.name) setName(target);
                        });
                      }}
                    >
                      {t('rename', lang)}
                    </button>
                    <button
                      data-testid={`wf-delete-${w.name}`}
                      onClick={() =>
                        void workflowFileOp('workflow_delete', { name: w.name }, () => {
                          if (name === w.name) setName(null);
                        })
                      }
                    >
                      {t('delete', lang)}
                    </button>
                  </>
                )}
              </li>
            ))}
          </ul>
        </aside>
      )}
      {panel === 'queue' && (
        <aside className="panel" data-testid="panel-queue">
          <h3>{t('running', lang)}</h3>
          <ul>
            {queue.running.map((id) => (
              <li key={id}>{id}</li>
            ))}
          </ul>
          <h3>{t('pending', lang)}</h3>
          <ul>
            {queue.pending.map((id) => (
              <li key={id}>
                {id} <button onClick={() => void api.deleteFromQueue([id])}>{t('delete', lang)}</button>
              </li>
            ))}
          </ul>
          <button onClick={() => void api.clearQueue()}>{t('clear', lang)}</button>
          <h3>{t('history', lang)}</h3>
          <ul data-testid="queue-history">
            {history.map(([id, h]) => {
              const wf = h.prompt[3]?.extra_pnginfo?.workflow as WorkflowDoc | undefined;
              return (
                <li key={id} className={h.status?.status_str === 'error' ? 'history-error' : ''}>
                  <span className="history-id" title={id}>
                    #{h.prompt[0]} {h.status?.status_str}
                  </span>
                  {wf && (
                    <button
                      data-testid="history-load"
                      onClick={() => {
                        openDoc(wf, null);
                        setPanel('none');
                      }}
                    >
                      {t('loadWorkflow', lang)}
                    </button>
                  )}
                  <button onClick={() => void api.deleteHistory([id]).then(refreshHistory)}>{t('delete', lang)}</button>
                </li>
              );
            })}
          </ul>
          <button onClick={() => void api.clearHistory().then(refreshHistory)}>{t('clear', lang)}</button>
        </aside>
      )}
      {panel === 'gallery' && (
        <aside className="panel gallery" data-testid="panel-gallery">
          {gallery.map((g) => (
            <img key={g.src} src={g.src} alt="" data-testid="gallery-image" onClick={() => setBigImage(g)} />
          ))}
        </aside>
      )}
      {panel === 'help' && (
        <aside className="panel" data-testid="panel-help">
          <h3>{t('help', lang)}</h3>
          <table>
            <tbody>
              {[
                ['Ctrl+Enter', t('queue', lang)],
                ['Ctrl+S', t('save', lang)],
                ['Ctrl+Z / Ctrl+Y', 'undo / redo'],
                ['Ctrl+C / Ctrl+V', 'copy / paste'],
                ['Ctrl+M', 'mute'],
                ['Ctrl+B', 'bypass'],
                ['Ctrl+G', t('group', lang)],
                [t('edgeDblClick', lang), 'reroute'],
                ['Delete', t('delete', lang)],
                ['Double-click', t('search', lang)],
                ['.', 'fit view'],
                ['Esc', t('close', lang)],
              ].map(([k, v]) => (
                <tr key={k}>
                  <td>
                    <kbd>{k}</kbd>
                  </td>
                  <td>{v}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </aside>
      )}
      {bigImage && (
        <div className="modal" data-testid="image-viewer" onClick={() => setBigImage(null)}>
          <img src={bigImage.src} alt="" />
          <div className="dialog-row" onClick={(e) => e.stopPropagation()}>
            <span>
              {t('madeBy', lang)} {bigImage.promptId}
            </span>
            <button
              data-testid="viewer-show-workflow"
              onClick={() => {
                const h = history.find(([id]) => id === bigImage.promptId)?.[1];
                const wf = h?.prompt[3]?.extra_pnginfo?.workflow;
                if (wf) setViewWorkflow(JSON.stringify(wf, null, 2));
                else
                  void fetch(bigImage.src)
                    .then((r) => r.blob())
                    .then((b) => readWorkflowFromFile(new File([b], 'image.png'), info))
                    .then(
                      (w) => setViewWorkflow(JSON.stringify(w, null, 2)),
                      (e: Error) => notify(e.message),
                    );
              }}
            >
              {t('showWorkflow', lang)}
            </button>
            <button
              data-testid="viewer-load-workflow"
              onClick={async () => {
                const blob = await (await fetch(bigImage.src)).blob();
                await openFile(new File([blob], 'image.png', { type: 'image/png' }));
                setBigImage(null);
              }}
            >
              {t('loadWorkflow', lang)}
            </button>
          </div>
        </div>
      )}
      {viewWorkflow && (
        <div className="modal" onClick={() => setViewWorkflow(null)}>
          <pre className="dialog workflow-json" data-testid="workflow-json" onClick={(e) => e.stopPropagation()}>
            {viewWorkflow}
          </pre>
        </div>
      )}
      {missing && (
        <div className="modal" data-testid="missing-dialog">
          <div className="dialog">
            <h3>{t('missingTitle', lang)}</h3>
            <p>{t('missingText', lang)}</p>
            <ul>
              {missing.map((m) => (
                <li key={m.class_type}>
                  <code>{m.class_type}</code> (#{m.node_ids.join(', #')})
                </li>
              ))}
            </ul>
            <button data-testid="missing-close" onClick={() => setMissing(null)}>
              {t('close', lang)}
            </button>
          </div>
        </div>
      )}
      {draftOffer && (
        <div className="modal" data-testid="draft-dialog">
          <div className="dialog">
            <p>{t('restore', lang)}</p>
            <button
              data-testid="draft-yes"
              onClick={() => {
                openDoc(draftOffer, null);
                setDraftOffer(null);
              }}
            >
              {t('yes', lang)}
            </button>
            <button
              data-testid="draft-no"
              onClick={() => {
                localStorage.removeItem(DRAFT_KEY);
                setDraftOffer(null);
              }}
            >
              {t('no', lang)}
            </button>
          </div>
        </div>
      )}
      {toast && (
        <div className="toast" data-testid="toast">
          {toast}
        </div>
      )}
    </div>
  );
}

export function App() {
  return (
    <ReactFlowProvider>
      <Editor />
    </ReactFlowProvider>
  );
}
