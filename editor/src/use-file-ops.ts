import { getViewportForBounds, useStoreApi, type ReactFlowInstance } from '@xyflow/react';
import { useCallback, useEffect, useRef, useState, type RefObject } from 'react';
import { flattenForEditor } from '../../engine/graph/convert-expand.ts';
import { alignLegacyWidgetValues } from '../../engine/graph/widgets.ts';
import type { ObjectInfo } from '../../engine/registry/registry.ts';
import { api } from './client.ts';
import { defaultGraph } from './default-graph.ts';
import { docBounds } from './doc-viewport.ts';
import { openingGraph } from './widget-rows.tsx';
import { missingClasses, normalizeDoc, widgetDefs, type WorkflowDoc } from './doc.ts';
import { readWorkflowFromFile } from './files.ts';
import { t, type Lang } from './i18n.ts';
import type { CanvasNode } from './NodeView.tsx';

export const DRAFT_KEY = 'weft.draft';
// The draft's file name and modification time, so a restored draft saves over its file again.
const DRAFT_FILE_KEY = 'weft.draft.file';

/** The document with old files' widget values in today's order (see alignLegacyWidgetValues). */
function withCurrentWidgetLayout(d: WorkflowDoc, info: ObjectInfo): WorkflowDoc {
  let changed = false;
  const nodes = d.nodes.map((n) => {
    const entry = info[n.type];
    if (!entry) return n;
    const values = alignLegacyWidgetValues(widgetDefs(entry), n.widgets_values);
    if (values === n.widgets_values) return n;
    changed = true;
    return { ...n, widgets_values: values };
  });
  return changed ? { ...d, nodes } : d;
}

export interface MissingClass {
  class_type: string;
  node_ids: number[];
}

export interface WorkflowListEntry {
  name: string;
  template?: boolean;
}

/** What file operations need of the document tabs (tabs.ts). */
export interface FileTabs {
  current: { name: string | null; modified?: number };
  open: (doc: WorkflowDoc, name: string | null, modified: number | undefined, saved: WorkflowDoc | null) => void;
  markSaved: (name: string, modified: number | undefined, saved: WorkflowDoc) => void;
  renamed: (from: string, to: string | null) => void;
}

export interface FileOpsDeps {
  doc: WorkflowDoc;
  docRef: RefObject<WorkflowDoc>;
  tabs: FileTabs;
  info: ObjectInfo;
  lang: Lang;
  notify: (message: string) => void;
  flow: ReactFlowInstance<CanvasNode>;
  /** Called when a document replaces the open one (runtime state and selection belong to the old one). */
  onReplaced: () => void;
  setMissing: (m: MissingClass[] | null) => void;
}

/**
 * The document as a file: its name and modification time on the server, opening (saved workflows,
 * templates, JSON and PNG files), saving, renaming and deleting saved workflows, downloads, and the
 * draft kept in localStorage across reloads.
 */
export function useFileOps({ doc, docRef, tabs, info, lang, notify, flow, onReplaced, setMissing }: FileOpsDeps) {
  const { name, modified } = tabs.current;
  const [workflowList, setWorkflowList] = useState<WorkflowListEntry[]>([]);
  const [draftOffer, setDraftOffer] = useState<{ doc: WorkflowDoc; name: string | null; modified?: number } | null>(null);
  const flowStore = useStoreApi<CanvasNode>();

  useEffect(() => {
    const draft = localStorage.getItem(DRAFT_KEY);
    if (!draft) return;
    try {
      const d = JSON.parse(draft) as WorkflowDoc;
      const file = JSON.parse(localStorage.getItem(DRAFT_FILE_KEY) ?? '{}') as { name?: string; modified?: number };
      if (d.nodes?.length) setDraftOffer({ doc: d, name: file.name ?? null, modified: file.modified });
    } catch {
      localStorage.removeItem(DRAFT_KEY);
    }
  }, []);

  useEffect(() => {
    if (!doc.nodes.length) return;
    localStorage.setItem(DRAFT_KEY, JSON.stringify(doc));
    localStorage.setItem(DRAFT_FILE_KEY, JSON.stringify({ name, modified }));
  }, [doc, name, modified]);

  // A file opened before /object_info has answered waits for it: opened without the classes, every
  // node would be reported missing (and its widgets laid out without their inputs).
  const classesKnown = Object.keys(info).length > 0;
  const waitingOpen = useRef<[WorkflowDoc, string | null, number | undefined, boolean] | null>(null);

  /** Opens a document (in a new tab when the open one has unsaved changes); `unsaved` marks it changed from its file (a draft). */
  const openDoc = useCallback(
    (raw: WorkflowDoc, docName: string | null, mod?: number, unsaved = false) => {
      if (!classesKnown) {
        waitingOpen.current = [raw, docName, mod, unsaved];
        return;
      }
      // Subgraphs and group nodes open flattened: their inner nodes become nodes of the one graph.
      const d = withCurrentWidgetLayout(normalizeDoc(flattenForEditor(raw, info)), info);
      tabs.open(d, docName, mod, unsaved ? null : d);
      onReplaced();
      const miss = missingClasses(d, info);
      setMissing(miss.length ? miss : null);
      // Fit to the saved positions now, before the nodes are drawn: React Flow draws only the nodes in
      // view once they are measured, so fitting only afterwards would remove most of a big graph and
      // draw it again (a 500-node file opened 1.4x slower so). The fit below corrects for drawn sizes.
      const bounds = docBounds(d);
      const { width, height, minZoom, maxZoom } = flowStore.getState();
      const view = bounds && width > 0 && height > 0 ? getViewportForBounds(bounds, width, height, minZoom, maxZoom, 0.1) : undefined;
      openingGraph(d.nodes.length, view?.zoom ?? flowStore.getState().transform[2]);
      if (view) void flow.setViewport(view);
      // The flag tells scripted clients (the browser tests) when the view has stopped moving under the cursor.
      document.body.dataset.fitting = '1';
      window.setTimeout(() => {
        void flow.fitView({ padding: 0.1 }).finally(() => delete document.body.dataset.fitting);
      }, 50);
    },
    [info, classesKnown, flow, flowStore, tabs, onReplaced, setMissing],
  );

  // A first open (no draft to restore, nothing opened yet) shows ComfyUI's default graph, once the classes are known.
  const defaultShown = useRef(false);
  useEffect(() => {
    const w = waitingOpen.current;
    if (!classesKnown || !w) return;
    waitingOpen.current = null;
    // The file the user opened takes the default graph's place (the effect below runs after this one, before the open shows in the refs it reads).
    defaultShown.current = true;
    openDoc(...w);
  }, [classesKnown, openDoc]);
  useEffect(() => {
    if (defaultShown.current || !classesKnown) return;
    defaultShown.current = true;
    if (localStorage.getItem(DRAFT_KEY) || docRef.current.nodes.length || tabs.current.name !== null) return;
    openDoc(defaultGraph(info), null);
  }, [info, classesKnown, docRef, tabs, openDoc]);

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
    },
    [openDoc],
  );

  /**
   * Saves the document: over its own file (refused when the file changed on the server since), or
   * under a new name, which asks before replacing another existing file (sent as `overwrite`).
   */
  const save = useCallback(
    async (asNew: boolean) => {
      let target = name;
      if (asNew || !target) {
        target = window.prompt(t('name', lang), target ?? 'workflow.json');
        if (!target) return;
        if (!target.endsWith('.json')) target += '.json';
      }
      const own = !asNew && target === name;
      const workflow = docRef.current;
      const attempt = (overwrite: boolean) =>
        api.workflowOp<{ modified: number }>('workflow_save', {
          name: target,
          workflow,
          overwrite,
          expectedModified: own ? modified : undefined,
        });
      try {
        let r: { modified: number };
        try {
          r = await attempt(own);
        } catch (e) {
          // Another file of that name: replace it only when the user says so.
          if (own || !/exists/.test((e as Error).message) || !window.confirm(`${target} ${t('overwriteConfirm', lang)}`)) throw e;
          r = await attempt(true);
        }
        tabs.markSaved(target, r.modified, workflow);
        notify(`${t('save', lang)}: ${target}`);
      } catch (e) {
        notify((e as Error).message);
      }
    },
    [docRef, name, modified, lang, notify, tabs],
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

  const renameWorkflow = useCallback(
    (from: string) => {
      let to = window.prompt(t('rename', lang), from);
      if (!to || to === from) return;
      if (!to.endsWith('.json')) to += '.json';
      const target = to;
      void workflowFileOp('workflow_rename', { name: from, to: target }, () => {
        tabs.renamed(from, target);
      });
    },
    [lang, tabs, workflowFileOp],
  );

  const deleteWorkflow = useCallback(
    (file: string) =>
      void workflowFileOp('workflow_delete', { name: file }, () => {
        tabs.renamed(file, null);
      }),
    [tabs, workflowFileOp],
  );

  const restoreDraft = useCallback(
    (accept: boolean) => {
      // A restored draft keeps its file name (saving goes over the file) and counts as unsaved.
      if (accept && draftOffer) openDoc(draftOffer.doc, draftOffer.name, draftOffer.modified, true);
      if (!accept) {
        localStorage.removeItem(DRAFT_KEY);
        localStorage.removeItem(DRAFT_FILE_KEY);
      }
      setDraftOffer(null);
    },
    [draftOffer, openDoc],
  );

  return {
    name,
    workflowList,
    draftOffer,
    openDoc,
    openFile,
    loadNamed,
    save,
    download,
    refreshWorkflows,
    renameWorkflow,
    deleteWorkflow,
    restoreDraft,
  };
}
