import { Background, Controls, MiniMap, ReactFlow, ReactFlowProvider, useReactFlow } from '@xyflow/react';
import '@xyflow/react/dist/style.css';
import './styles.css';
import { useCallback, useEffect, useMemo, useReducer, useRef, useState } from 'react';
import { convertWorkflowToPrompt } from '../../engine/graph/convert.ts';
import type { ObjectInfoEntry } from '../../engine/registry/registry.ts';
import { useCanvasElements } from './canvas-elements.ts';
import { api } from './client.ts';
import { applyPrimitives, emptyDoc, removeNodes, REROUTE, updateNode, type WorkflowDoc } from './doc.ts';
import { initialExecutionState, makeExecutionReducer, type GalleryItem, type WireExecutionEvent } from './execution-state.ts';
import { useHistory } from './history.ts';
import { nodeTitle, setUiLang, t, type Lang } from './i18n.ts';
import { ErrorDialog, runErrorOf, type RunError } from './ErrorDialog.tsx';
import { FRONTEND_ENTRIES } from './frontend-nodes.ts';
import { galleryItems, ViewerNav } from './Gallery.tsx';
import { useImageIntake } from './image-intake.ts';
import { QueuePanel as RunQueuePanel } from './QueuePanel.tsx';
import { ProgressBar, runProgress } from './ProgressBar.tsx';
import { onFilesChanged } from './uploads.ts';
import { GroupView, NodeView, RerouteView, type CanvasNode } from './NodeView.tsx';
import { DraftDialog, MissingDialog, Toast, WorkflowJsonDialog } from './panels/Dialogs.tsx';
import { GalleryPanel, ImageViewer } from './panels/GalleryPanel.tsx';
import { HelpPanel } from './panels/HelpPanel.tsx';
import { Toolbar, type PanelName } from './panels/Toolbar.tsx';
import { WorkflowsPanel } from './panels/WorkflowsPanel.tsx';
import { SearchBox } from './SearchBox.tsx';
import { useShortcuts } from './shortcuts.ts';
import { useConnection } from './use-connection.ts';
import { useFileOps, type MissingClass } from './use-file-ops.ts';
import { isDirty, useTabs } from './tabs.ts';
import { NodeContextMenu, type NodeMenuRequest } from './context-menu.tsx';
import { TabBar } from './panels/TabBar.tsx';
import { useGraphEditing, type SearchRequest } from './use-graph-editing.ts';
import { useQueuePrompt } from './use-queue-prompt.ts';
import { useDetailLevel } from './detail-level.ts';
import { useLinkShiftMove } from './use-link-shift-move.ts';
import { useSpacePan } from './use-space-pan.ts';
import { convertInputToWidget, convertWidgetToInput } from './widget-inputs.ts';
import { WidgetRowsProvider } from './widget-rows.tsx';

const nodeTypes = { weft: NodeView, weftGroup: GroupView, weftReroute: RerouteView };
const executionReducer = makeExecutionReducer((img) => api.viewUrl(img));

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

function Editor() {
  const [lang, setLang] = useState<Lang>(() => (localStorage.getItem('weft.lang') as Lang) ?? 'en');
  const history_ = useHistory(emptyDoc());
  const { doc, setDoc, undo, redo, seal } = history_;
  const [execution, dispatch] = useReducer(executionReducer, initialExecutionState);
  const [toast, setToast] = useState<string | null>(null);
  const [missing, setMissing] = useState<MissingClass[] | null>(null);
  const [search, setSearch] = useState<SearchRequest | null>(null);
  const [panel, setPanel] = useState<PanelName>('none');
  const [viewWorkflow, setViewWorkflow] = useState<string | null>(null);
  const [bigImage, setBigImage] = useState<GalleryItem | null>(null);
  const [batchCount, setBatchCount] = useState(1);
  const [nodeMenu, setNodeMenu] = useState<NodeMenuRequest | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const [runError, setRunError] = useState<RunError | null>(null);
  const flow = useReactFlow<CanvasNode>();
  const canvasRef = useRef<HTMLDivElement>(null);
  useDetailLevel(canvasRef);
  const docRef = useRef(doc);
  docRef.current = doc;

  const notify = useCallback((msg: string) => {
    setToast(msg);
    window.setTimeout(() => setToast((m) => (m === msg ? null : m)), 4000);
  }, []);

  useEffect(() => {
    localStorage.setItem('weft.lang', lang);
    setUiLang(lang);
  }, [lang]);

  const onEvent = useCallback(
    (e: WireExecutionEvent) => {
      if (e.type === 'execution_error') setRunError(runErrorOf(e.data as unknown as Record<string, unknown>, nodeNameRef.current));
      else if (e.type === 'execution_interrupted') notify('interrupted');
    },
    [notify],
  );
  const { connected, info, queue, history, refreshHistory, refreshInfo } = useConnection({ dispatch, onEvent, notify });
  // An upload adds a file the image combos should list.
  useEffect(() => onFilesChanged(() => void refreshInfo()), [refreshInfo]);
  /** A node as the canvas names it (its title, else its class's display name in the interface language). */
  const nodeName = useCallback(
    (id: string, type?: string) => {
      const n = docRef.current.nodes.find((x) => String(x.id) === id);
      const cls = n?.type ?? type ?? '';
      return n?.title ?? nodeTitle(cls, info[cls]?.display_name, lang);
    },
    [info, lang],
  );
  const nodeNameRef = useRef(nodeName);
  nodeNameRef.current = nodeName;

  const editing = useGraphEditing({ docRef, setDoc, seal, info, lang, notify, flow, canvasRef, openSearch: setSearch });
  const { resetSelection } = editing;
  const linkMove = useLinkShiftMove({ canvasRef, docRef, setDoc, notify, withConnection: editing.withConnection });
  useSpacePan(flow);
  const onReplaced = useCallback(() => {
    dispatch({ type: 'reset' });
    resetSelection();
  }, [resetSelection]);
  const tabs = useTabs(history_, (n) => window.confirm(`${n} ${t('discardChanges', lang)}`));
  const files = useFileOps({ doc, docRef, tabs, info, lang, notify, flow, onReplaced, setMissing });
  const queuePrompt = useQueuePrompt({ docRef, setDoc, info, notify, dispatch, setMissing });

  const canvas = useCanvasElements({
    doc,
    info,
    runtime: execution.runtime,
    lang,
    selected: editing.selected,
    selectedGroups: editing.selectedGroups,
    selectedEdges: editing.selectedEdges,
    measured: editing.measured,
    onWidget: editing.onWidget,
    onGroup: editing.onGroup,
  });
  const searchInfo = useMemo(() => ({ ...info, ...FRONTEND_ENTRIES, [REROUTE]: REROUTE_ENTRY }), [info]);
  const intake = useImageIntake({
    info,
    doc: () => docRef.current,
    selected: () => editing.selected,
    setDoc,
    toFlow: (p) => flow.screenToFlowPosition(p),
    notify,
  });
  const gallery = useMemo(() => galleryItems(execution.gallery, history, (img) => api.viewUrl(img)), [execution.gallery, history]);

  useShortcuts({
    queue: () => void queuePrompt({ count: batchCount }),
    queueFront: () => void queuePrompt({ front: true, count: batchCount }),
    interrupt: () => void api.interrupt(),
    open: () => fileInput.current?.click(),
    selectAll: editing.selectAll,
    pasteWithLinks: () => editing.paste(true),
    collapse: editing.toggleCollapsed,
    refreshModels: () => void refreshInfo().then(() => notify(t('refreshed', lang))),
    undo,
    redo,
    save: () => void files.save(false),
    copy: editing.copy,
    paste: () => editing.paste(),
    mute: () => editing.toggleMode(2),
    bypass: () => editing.toggleMode(4),
    group: editing.createGroup,
    fitView: () => void flow.fitView({ padding: 0.1 }),
    escape: () => {
      setSearch(null);
      setPanel('none');
      setViewWorkflow(null);
      setBigImage(null);
    },
  });

  const menuNode = nodeMenu ? doc.nodes.find((n) => n.id === nodeMenu.nodeId) : undefined;
  const closeNodeMenu = useCallback(() => setNodeMenu(null), []);

  const togglePanel = (p: Exclude<PanelName, 'none'>) => {
    setPanel(panel === p ? 'none' : p);
    if (p === 'workflows') void files.refreshWorkflows();
    if (p === 'queue') refreshHistory();
  };

  return (
    <div
      className="weft-app"
      onDragOver={(e) => e.preventDefault()}
      onDrop={(e) => {
        e.preventDefault();
        const f = e.dataTransfer.files[0];
        // An image without a workflow becomes a LoadImage where it was dropped; anything else opens.
        const at = { x: e.clientX, y: e.clientY };
        if (f) void intake.dropImage(f, at).then((done) => (done ? undefined : files.openFile(f)));
      }}
    >
      <ProgressBar
        runtime={execution.runtime}
        queued={queue.running.length + queue.pending.length}
        docName={files.name}
        nodeName={nodeName}
      />
      <TabBar
        lang={lang}
        tabs={tabs.tabs}
        active={tabs.active}
        dirty={(tab) => isDirty(tab, tabs.docOf(tab))}
        onSwitch={(key) => tabs.switchTo(key) && onReplaced()}
        onClose={(key) => {
          const wasActive = key === tabs.active;
          if (tabs.close(key, emptyDoc()) && wasActive) onReplaced();
        }}
        onNew={() => {
          tabs.newTab(emptyDoc());
          onReplaced();
        }}
      />
      <Toolbar
        lang={lang}
        setLang={setLang}
        docName={files.name}
        connected={connected}
        queueCount={queue.running.length + queue.pending.length}
        onNew={() => {
          tabs.newTab(emptyDoc());
          onReplaced();
        }}
        unsaved={isDirty(tabs.current, doc)}
        onTogglePanel={togglePanel}
        onOpenFile={(f) => void files.openFile(f)}
        onSave={(asNew) => void files.save(asNew)}
        onGroup={editing.createGroup}
        onExport={() => files.download(doc, files.name ?? 'workflow.json')}
        onExportApi={() =>
          files.download(
            convertWorkflowToPrompt(applyPrimitives(doc, info), info).prompt,
            (files.name ?? 'workflow').replace(/\.json$/, '') + '_api.json',
          )
        }
        onInterrupt={() => void api.interrupt()}
        onQueue={() => void queuePrompt({ count: batchCount })}
        batchCount={batchCount}
        setBatchCount={setBatchCount}
        fileInputRef={fileInput}
      />
      <div
        ref={canvasRef}
        className="weft-canvas"
        onMouseMove={(e) => editing.trackCursor(e.clientX, e.clientY)}
        onDoubleClick={(e) => {
          if ((e.target as HTMLElement).closest('.react-flow__node, .react-flow__edge, .react-flow__panel, .react-flow__minimap')) return;
          setSearch({ x: e.clientX, y: e.clientY });
        }}
      >
        <WidgetRowsProvider>
          <ReactFlow
            nodes={canvas.nodes}
            edges={canvas.edges}
            nodeTypes={nodeTypes}
            onNodesChange={editing.onNodesChange}
            onEdgesChange={editing.onEdgesChange}
            onConnect={editing.onConnect}
            onConnectEnd={editing.onConnectEnd}
            onReconnectStart={editing.onReconnectStart}
            onReconnect={editing.onReconnect}
            onReconnectEnd={editing.onReconnectEnd}
            isValidConnection={(c) => editing.connectionProblem(c) === undefined}
            onEdgeDoubleClick={editing.onEdgeDoubleClick}
            onNodeContextMenu={(e, n) => {
              if (n.type !== 'weft') return;
              e.preventDefault();
              setNodeMenu({ x: e.clientX, y: e.clientY, nodeId: Number(n.id) });
            }}
            zoomOnDoubleClick={false}
            deleteKeyCode={['Delete', 'Backspace']}
            multiSelectionKeyCode={['Shift', 'Control', 'Meta']}
            // ComfyUI draws a selection box on Ctrl+drag (Shift+drag too, React Flow's default).
            selectionKeyCode={['Control', 'Meta', 'Shift']}
            minZoom={0.05}
            // Every node stays drawn (no onlyRenderVisibleElements): drawing only those in view mounts and
            // unmounts nodes on every pan and zoom step of a big graph, React work a moving view need not do.
            colorMode="dark"
          >
            <Background />
            <Controls />
            <MiniMap pannable zoomable nodeColor="#5a5a5a" maskColor="#0009" />
          </ReactFlow>
        </WidgetRowsProvider>
      </div>
      {linkMove && (
        <svg className="link-move-line" data-testid="link-move-line">
          <line x1={linkMove.x1} y1={linkMove.y1} x2={linkMove.x2} y2={linkMove.y2} />
        </svg>
      )}
      {search && (
        <SearchBox
          info={searchInfo}
          lang={lang}
          filterType={search.filterType}
          side={search.filterType ? (search.from ? 'input' : 'output') : undefined}
          at={{ x: search.x, y: search.y }}
          onClose={() => setSearch(null)}
          onPick={(classType) => {
            editing.addFromSearch(search, classType);
            setSearch(null);
          }}
        />
      )}
      {panel === 'workflows' && (
        <WorkflowsPanel
          lang={lang}
          list={files.workflowList}
          onLoad={(n, template) => void files.loadNamed(n, template).then(() => setPanel('none'))}
          onRename={files.renameWorkflow}
          onDelete={files.deleteWorkflow}
        />
      )}
      {panel === 'queue' && (
        <RunQueuePanel
          lang={lang}
          info={info}
          running={queue.running}
          pending={queue.pending}
          history={history}
          runningNode={runProgress(execution.runtime)?.nodeId ?? null}
          viewUrl={(img) => api.viewUrl(img)}
          onOpenImage={(src, promptId) => setBigImage({ src, promptId })}
          onLoadWorkflow={(wf) => {
            files.openDoc(wf as WorkflowDoc, null);
            setPanel('none');
          }}
          onDeletePending={(id) => void api.deleteFromQueue([id])}
          onClearPending={() => void api.clearQueue()}
          onDeleteHistory={(id) => void api.deleteHistory([id]).then(refreshHistory)}
          onClearHistory={() => void api.clearHistory().then(refreshHistory)}
        />
      )}
      {panel === 'gallery' && <GalleryPanel items={gallery} onOpen={setBigImage} />}
      {panel === 'help' && <HelpPanel lang={lang} />}
      {bigImage && (
        <ImageViewer
          lang={lang}
          image={bigImage}
          history={history}
          info={info}
          notify={notify}
          onClose={() => setBigImage(null)}
          onShowWorkflow={setViewWorkflow}
          onLoadWorkflow={files.openFile}
        >
          <ViewerNav items={gallery} current={bigImage} lang={lang} onGo={setBigImage} />
        </ImageViewer>
      )}
      {viewWorkflow && <WorkflowJsonDialog json={viewWorkflow} onClose={() => setViewWorkflow(null)} />}
      {missing && <MissingDialog lang={lang} missing={missing} onClose={() => setMissing(null)} />}
      {files.draftOffer && <DraftDialog lang={lang} onAnswer={files.restoreDraft} />}
      {toast && <Toast message={toast} />}
      {nodeMenu && menuNode && (
        <NodeContextMenu
          lang={lang}
          at={nodeMenu}
          node={menuNode}
          info={info[menuNode.type]}
          onEdit={(fn) => setDoc((d) => updateNode(d, nodeMenu.nodeId, fn))}
          onConvert={(name, toInput) =>
            setDoc((d) => {
              const ci = info[menuNode.type];
              if (!toInput) return convertInputToWidget(d, nodeMenu.nodeId, name);
              return ci ? convertWidgetToInput(d, nodeMenu.nodeId, name, ci) : d;
            })
          }
          onRemove={() => setDoc((d) => removeNodes(d, new Set([nodeMenu.nodeId])))}
          onClose={closeNodeMenu}
        />
      )}
      {runError && <ErrorDialog error={runError} lang={lang} onClose={() => setRunError(null)} />}
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
