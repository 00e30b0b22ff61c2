import {
  Background,
  Controls,
  MiniMap,
  ReactFlow,
  ReactFlowProvider,
  useReactFlow,
  type Connection,
  type Edge,
  type NodeChange,
  type EdgeChange,
} from '@xyflow/react';
import '@xyflow/react/dist/style.css';
import './styles.css';
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { convertWorkflowToPrompt } from '../../engine/graph/convert.ts';
import type { ObjectInfo } from '../../engine/registry/registry.ts';
import { ApiClient, type ImageRef } from './api.ts';
import {
  applyControlAfterGenerate,
  connect,
  createNode,
  emptyDoc,
  moveGroups,
  ensureWidgetInput,
  typesCompatible,
  widgetDefs,
  missingClasses,
  removeLink,
  removeNodes,
  updateNode,
  type WorkflowDoc,
} from './doc.ts';
import { nodeTitle, t, type Lang } from './i18n.ts';
import { NodeView, typeColor, type NodeRuntime, type WeftFlowNode } from './NodeView.tsx';
import { readWorkflowFromFile } from './files.ts';
import { SearchBox } from './SearchBox.tsx';
import { useHistory } from './history.ts';

const api = new ApiClient();
function GroupView({ data }: { data: { title: string; color?: string; width: number; height: number } }) {
  return (
    <div className="weft-group" data-testid={`group-${data.title}`} style={{ width: data.width, height: data.height, borderColor: data.color ?? '#888', background: `${data.color ?? '#888888'}22` }}>
      <div className="weft-group-title" style={{ background: `${data.color ?? '#888888'}66` }}>{data.title}</div>
    </div>
  );
}

const nodeTypes = { weft: NodeView, weftGroup: GroupView };
const DRAFT_KEY = 'weft.draft';

interface QueueState {
  running: string[];
  pending: string[];
}

function Editor() {
  const [lang, setLang] = useState<Lang>(() => (localStorage.getItem('weft.lang') as Lang) ?? 'en');
  const [info, setInfo] = useState<ObjectInfo>({});
  const { doc, setDoc, replaceDoc, undo, redo } = useHistory(emptyDoc());
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
  const [workflowList, setWorkflowList] = useState<{ name: string; template?: boolean }[]>([]);
  const [draftOffer, setDraftOffer] = useState<WorkflowDoc | null>(null);
  const [bigImage, setBigImage] = useState<string | null>(null);
  const clipboard = useRef<WorkflowDoc['nodes']>([]);
  const flow = useReactFlow();
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

  const onServerMessage = useCallback((type: string, data: Record<string, unknown>) => {
    const node = data.node as string | null | undefined;
    switch (type) {
      case 'status':
        api.queue().then(
          (q) => setQueue({ running: q.queue_running.map((i) => String(i[1])), pending: q.queue_pending.map((i) => String(i[1])) }),
          () => {},
        );
        break;
      case 'execution_start':
        setRuntime((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, { ...v, running: false, progress: undefined, errors: undefined }])));
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
        setRuntime((r) => ({ ...r, [String(data.node_id)]: { ...r[String(data.node_id)], running: false, errors: [{ message: String(data.exception_message) }] } }));
        break;
      case 'execution_interrupted':
        notify('interrupted');
        break;
    }
  }, [notify]);

  const openDoc = useCallback(
    (raw: WorkflowDoc, docName: string | null, mod?: number) => {
      const d = { ...raw, groups: raw.groups ?? [], links: raw.links ?? [] };
      replaceDoc(d);
      setName(docName);
      setModified(mod);
      setRuntime({});
      const miss = missingClasses(d, info);
      setMissing(miss.length ? miss : null);
      window.setTimeout(() => flow.fitView({ padding: 0.1 }), 50);
    },
    [info, flow, replaceDoc],
  );

  const onWidget = useCallback(
    (nodeId: number, index: number, value: unknown) => {
      setDoc((d) => updateNode(d, nodeId, (n) => {
        const values = [...n.widgets_values];
        values[index] = value;
        return { ...n, widgets_values: values };
      }));
    },
    [setDoc],
  );

  const [selected, setSelected] = useState<Set<number>>(new Set());
  const [measured, setMeasured] = useState<Record<string, { width: number; height: number }>>({});
  const rfNodes = useMemo(
    () => [
      ...doc.groups.map((g, i) => ({
        id: `g-${i}`,
        type: 'weftGroup' as const,
        position: { x: g.bounding[0], y: g.bounding[1] },
        zIndex: 0,
        selectable: true,
        ...(measured[`g-${i}`] ? { measured: measured[`g-${i}`] } : {}),
        data: { title: g.title, color: g.color, width: g.bounding[2], height: g.bounding[3] },
      })),
      ...doc.nodes.map((n) => ({
        id: String(n.id),
        type: 'weft',
        zIndex: 1,
        position: { x: n.pos[0], y: n.pos[1] },
        selected: selected.has(n.id),
        ...(measured[String(n.id)] ? { measured: measured[String(n.id)] } : {}),
        data: {
          node: n,
          info: info[n.type],
          runtime: runtime[String(n.id)] ?? {},
          title: n.title ?? nodeTitle(n.type, info[n.type]?.display_name, lang),
          onWidget,
        },
      })),
    ] as WeftFlowNode[],
    [doc.nodes, doc.groups, info, runtime, onWidget, selected, measured, lang],
  );

  const rfEdges: Edge[] = useMemo(
    () =>
      doc.links.map(([id, o, os, tgt, ts, type]) => ({
        id: String(id),
        source: String(o),
        sourceHandle: `out-${os}`,
        target: String(tgt),
        targetHandle: `in-${ts}`,
        style: { stroke: typeColor(type), strokeWidth: 2 },
        data: { type },
      })),
    [doc.links],
  );

  const onNodesChange = useCallback(
    (changes: NodeChange<WeftFlowNode>[]) => {
      const removed = new Set<number>();
      const moves = new Map<number, [number, number]>();
      const dims: [string, { width: number; height: number }][] = [];
      const groupMoves = new Map<number, [number, number]>();
      for (const c of changes) {
        if (c.type === 'dimensions' && c.dimensions) dims.push([c.id, c.dimensions]);
        if (c.type === 'position' && c.position && c.id.startsWith('g-')) {
          groupMoves.set(Number(c.id.slice(2)), [Math.round(c.position.x), Math.round(c.position.y)]);
          continue;
        }
        if (c.type === 'position' && c.position) moves.set(Number(c.id), [Math.round(c.position.x), Math.round(c.position.y)]);
        if (c.type === 'remove' && !c.id.startsWith('g-')) removed.add(Number(c.id));
      }
      // Moving a group moves the nodes inside it, as in ComfyUI.
      if (groupMoves.size) setDoc((d) => moveGroups(d, groupMoves), { coalesce: 'move' });
      if (dims.length) setMeasured((m) => ({ ...m, ...Object.fromEntries(dims) }));
      if (moves.size) setDoc((d) => ({ ...d, nodes: d.nodes.map((n) => (moves.has(n.id) ? { ...n, pos: moves.get(n.id)! } : n)) }), { coalesce: 'move' });
      if (removed.size) setDoc((d) => removeNodes(d, removed));
      const selectChanges = changes.filter((c) => c.type === 'select');
      if (selectChanges.length) setSelected((s) => {
        const next = new Set(s);
        for (const c of selectChanges) if (c.type === 'select') (c.selected ? next.add(Number(c.id)) : next.delete(Number(c.id)));
        return next;
      });
    },
    [setDoc],
  );

  const onEdgesChange = useCallback(
    (changes: EdgeChange[]) => {
      for (const c of changes) if (c.type === 'remove') setDoc((d) => removeLink(d, Number(c.id)));
    },
    [setDoc],
  );

  const onConnect = useCallback(
    (c: Connection) => {
      let d = docRef.current;
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
      if (r.error) notify(r.error);
      else setDoc(() => r.doc);
    },
    [notify, setDoc, info],
  );

  const queuePrompt = useCallback(async () => {
    const d = docRef.current;
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
      const body = (e as { body?: { error?: { message?: string }; node_errors?: Record<string, { errors: { message: string; details: string; extra_info?: { input_name?: string } }[] }> } }).body;
      if (body?.node_errors) {
        const next: Record<string, NodeRuntime> = {};
        for (const [id, ne] of Object.entries(body.node_errors)) {
          next[id] = { errors: ne.errors.map((er) => ({ input: er.extra_info?.input_name, message: `${er.message}${er.details ? `: ${er.details}` : ''}` })) };
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
        clipboard.current = docRef.current.nodes.filter((n) => selected.has(n.id));
      } else if (mod && e.key.toLowerCase() === 'v') {
        const copies = clipboard.current;
        if (copies.length) {
          setDoc((d) => {
            let next = d;
            for (const n of copies) {
              const id = next.last_node_id + 1;
              next = {
                ...next,
                last_node_id: id,
                nodes: [...next.nodes, { ...structuredClone(n), id, pos: [n.pos[0] + 40, n.pos[1] + 40], inputs: n.inputs.map((i) => ({ ...i, link: null })), outputs: n.outputs.map((o) => ({ ...o, links: [] })) }],
              };
            }
            return next;
          });
        }
      } else if (mod && e.key.toLowerCase() === 'm') {
        e.preventDefault();
        setDoc((d) => ({ ...d, nodes: d.nodes.map((n) => (selected.has(n.id) ? { ...n, mode: n.mode === 2 ? 0 : 2 } : n)) }));
      } else if (mod && e.key.toLowerCase() === 'b') {
        e.preventDefault();
        setDoc((d) => ({ ...d, nodes: d.nodes.map((n) => (selected.has(n.id) ? { ...n, mode: n.mode === 4 ? 0 : 4 } : n)) }));
      } else if (e.key === '.') {
        flow.fitView({ padding: 0.1 });
      } else if (e.key === 'Escape') {
        setSearch(null);
        setPanel('none');
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [queuePrompt, undo, redo, save, selected, setDoc, flow]);

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
        <span className="doc-name" data-testid="doc-name">{name ?? 'untitled'}</span>
        <button data-testid="btn-new" onClick={() => openDoc(emptyDoc(), null)}>{t('new', lang)}</button>
        <button data-testid="btn-workflows" onClick={() => { setPanel(panel === 'workflows' ? 'none' : 'workflows'); void refreshWorkflows(); }}>{t('workflows', lang)}</button>
        <label className="file-btn">
          {t('open', lang)}
          <input data-testid="file-input" type="file" accept=".json,.png,application/json,image/png" onChange={(e) => e.target.files?.[0] && void openFile(e.target.files[0])} />
        </label>
        <button data-testid="btn-save" onClick={() => void save(false)}>{t('save', lang)}</button>
        <button data-testid="btn-save-as" onClick={() => void save(true)}>{t('saveAs', lang)}</button>
        <button onClick={() => download(doc, name ?? 'workflow.json')}>{t('exportJson', lang)}</button>
        <button onClick={() => download(convertWorkflowToPrompt(doc, info).prompt, (name ?? 'workflow').replace(/\.json$/, '') + '_api.json')}>{t('exportApi', lang)}</button>
        <span className="spacer" />
        <span className={connected ? 'conn ok' : 'conn'} data-testid="connection">{connected ? t('connected', lang) : t('disconnected', lang)}</span>
        <button data-testid="btn-queue-panel" onClick={() => setPanel(panel === 'queue' ? 'none' : 'queue')}>
          {t('queuePanel', lang)} ({queue.running.length + queue.pending.length})
        </button>
        <button data-testid="btn-gallery" onClick={() => setPanel(panel === 'gallery' ? 'none' : 'gallery')}>{t('gallery', lang)}</button>
        <button data-testid="btn-interrupt" onClick={() => void api.interrupt()}>{t('interrupt', lang)}</button>
        <button className="primary" data-testid="btn-queue" onClick={() => void queuePrompt()}>{t('queue', lang)}</button>
        <button data-testid="btn-help" onClick={() => setPanel(panel === 'help' ? 'none' : 'help')}>?</button>
        <select data-testid="lang" value={lang} onChange={(e) => setLang(e.target.value as Lang)}>
          <option value="en">English</option>
          <option value="zh">简体中文</option>
        </select>
      </header>
      <div className="weft-canvas" onDoubleClick={(e) => {
        if ((e.target as HTMLElement).closest('.react-flow__node')) return;
        setSearch({ x: e.clientX, y: e.clientY });
      }}>
        <ReactFlow
          nodes={rfNodes}
          edges={rfEdges}
          nodeTypes={nodeTypes}
          onNodesChange={onNodesChange}
          onEdgesChange={onEdgesChange}
          onConnect={onConnect}
          onConnectEnd={(event, state) => {
            if (state.isValid || !state.fromHandle) return;
            const p = 'clientX' in event ? event : event.changedTouches[0];
            const from = state.fromNode ? Number(state.fromNode.id) : undefined;
            const slot = state.fromHandle.id ? Number(state.fromHandle.id.split('-')[1]) : 0;
            const n = docRef.current.nodes.find((x) => x.id === from);
            const filterType = state.fromHandle.type === 'source' ? n?.outputs[slot]?.type : n?.inputs[slot]?.type;
            setSearch({ x: p.clientX, y: p.clientY, filterType, from: state.fromHandle.type === 'source' && from !== undefined ? { node: from, slot } : undefined });
          }}
          isValidConnection={(c) => {
            const o = docRef.current.nodes.find((n) => n.id === Number(c.source));
            const tg = docRef.current.nodes.find((n) => n.id === Number(c.target));
            const out = o?.outputs[Number(c.sourceHandle?.slice(4))];
            let inType = tg?.inputs[Number(c.targetHandle?.slice(3))]?.type;
            if (c.targetHandle?.startsWith('w-') && tg && info[tg.type]) {
              const w = widgetDefs(info[tg.type]).find((x) => x.name === c.targetHandle!.slice(2));
              inType = w ? (w.kind === 'COMBO' ? 'COMBO' : w.kind) : undefined;
            }
            return !!out && !!inType && typesCompatible(out.type, inType);
          }}
          zoomOnDoubleClick={false}
          deleteKeyCode={['Delete', 'Backspace']}
          multiSelectionKeyCode={['Shift', 'Control', 'Meta']}
          minZoom={0.05}
          onlyRenderVisibleElements
          fitView
        >
          <Background />
          <Controls />
          <MiniMap pannable zoomable />
        </ReactFlow>
      </div>
      {search && (
        <SearchBox
          info={info}
          lang={lang}
          filterType={search.filterType}
          onClose={() => setSearch(null)}
          onPick={(classType) => {
            const pos = flow.screenToFlowPosition({ x: search.x, y: search.y });
            setDoc((d) => {
              let next = createNode(d, classType, info[classType], [Math.round(pos.x), Math.round(pos.y)]);
              if (search.from && search.filterType) {
                const created = next.nodes[next.nodes.length - 1];
                const slot = created.inputs.findIndex((i) => i.type === search.filterType || i.type === '*');
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
                    <button onClick={async () => {
                      const to = window.prompt(t('rename', lang), w.name);
                      if (to) { await api.workflowOp('workflow_rename', { name: w.name, to }); void refreshWorkflows(); }
                    }}>{t('rename', lang)}</button>
                    <button onClick={async () => { await api.workflowOp('workflow_delete', { name: w.name }); void refreshWorkflows(); }}>{t('delete', lang)}</button>
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
          <ul>{queue.running.map((id) => <li key={id}>{id}</li>)}</ul>
          <h3>{t('pending', lang)}</h3>
          <ul>
            {queue.pending.map((id) => (
              <li key={id}>{id} <button onClick={() => void api.deleteFromQueue([id])}>{t('delete', lang)}</button></li>
            ))}
          </ul>
          <button onClick={() => void api.clearQueue()}>{t('clear', lang)}</button>
        </aside>
      )}
      {panel === 'gallery' && (
        <aside className="panel gallery" data-testid="panel-gallery">
          {gallery.map((g) => (
            <img key={g.src} src={g.src} alt="" onClick={() => setBigImage(g.src)} />
          ))}
        </aside>
      )}
      {panel === 'help' && (
        <aside className="panel" data-testid="panel-help">
          <h3>{t('help', lang)}</h3>
          <table>
            <tbody>
              {[
                ['Ctrl+Enter', t('queue', lang)], ['Ctrl+S', t('save', lang)], ['Ctrl+Z / Ctrl+Y', 'undo / redo'],
                ['Ctrl+C / Ctrl+V', 'copy / paste'], ['Ctrl+M', 'mute'], ['Ctrl+B', 'bypass'], ['Delete', t('delete', lang)],
                ['Double-click', t('search', lang)], ['.', 'fit view'], ['Esc', t('close', lang)],
              ].map(([k, v]) => <tr key={k}><td><kbd>{k}</kbd></td><td>{v}</td></tr>)}
            </tbody>
          </table>
        </aside>
      )}
      {bigImage && (
        <div className="modal" onClick={() => setBigImage(null)}>
          <img src={bigImage} alt="" />
          <button onClick={async (e) => {
            e.stopPropagation();
            const blob = await (await fetch(bigImage)).blob();
            await openFile(new File([blob], 'image.png', { type: 'image/png' }));
            setBigImage(null);
          }}>{t('loadWorkflow', lang)}</button>
        </div>
      )}
      {missing && (
        <div className="modal" data-testid="missing-dialog">
          <div className="dialog">
            <h3>{t('missingTitle', lang)}</h3>
            <p>{t('missingText', lang)}</p>
            <ul>{missing.map((m) => <li key={m.class_type}><code>{m.class_type}</code> (#{m.node_ids.join(', #')})</li>)}</ul>
            <button data-testid="missing-close" onClick={() => setMissing(null)}>{t('close', lang)}</button>
          </div>
        </div>
      )}
      {draftOffer && (
        <div className="modal" data-testid="draft-dialog">
          <div className="dialog">
            <p>{t('restore', lang)}</p>
            <button data-testid="draft-yes" onClick={() => { openDoc(draftOffer, null); setDraftOffer(null); }}>{t('yes', lang)}</button>
            <button data-testid="draft-no" onClick={() => { localStorage.removeItem(DRAFT_KEY); setDraftOffer(null); }}>{t('no', lang)}</button>
          </div>
        </div>
      )}
      {toast && <div className="toast" data-testid="toast">{toast}</div>}
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
