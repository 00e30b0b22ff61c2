import type { ReactFlowInstance } from '@xyflow/react';
import { useCallback, useEffect, useState, type RefObject } from 'react';
import { flattenForEditor } from '../../engine/graph/convert-expand.ts';
import { alignLegacyWidgetValues } from '../../engine/graph/widgets.ts';
import type { ObjectInfo } from '../../engine/registry/registry.ts';
import { api } from './client.ts';
import { missingClasses, normalizeDoc, widgetDefs, type WorkflowDoc } from './doc.ts';
import { readWorkflowFromFile } from './files.ts';
import { t, type Lang } from './i18n.ts';
import type { CanvasNode } from './NodeView.tsx';

export const DRAFT_KEY = 'weft.draft';

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

export interface FileOpsDeps {
  doc: WorkflowDoc;
  docRef: RefObject<WorkflowDoc>;
  replaceDoc: (d: WorkflowDoc) => void;
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
export function useFileOps({ doc, docRef, replaceDoc, info, lang, notify, flow, onReplaced, setMissing }: FileOpsDeps) {
  const [name, setName] = useState<string | null>(null);
  const [modified, setModified] = useState<number | undefined>(undefined);
  const [workflowList, setWorkflowList] = useState<WorkflowListEntry[]>([]);
  const [draftOffer, setDraftOffer] = useState<WorkflowDoc | null>(null);

  useEffect(() => {
    const draft = localStorage.getItem(DRAFT_KEY);
    if (!draft) return;
    try {
      const d = JSON.parse(draft) as WorkflowDoc;
      if (d.nodes?.length) setDraftOffer(d);
    } catch {
      localStorage.removeItem(DRAFT_KEY);
    }
  }, []);

  useEffect(() => {
    if (doc.nodes.length) localStorage.setItem(DRAFT_KEY, JSON.stringify(doc));
  }, [doc]);

  const openDoc = useCallback(
    (raw: WorkflowDoc, docName: string | null, mod?: number) => {
      // Subgraphs and group nodes open flattened: their inner nodes become nodes of the one graph.
      const d = withCurrentWidgetLayout(normalizeDoc(flattenForEditor(raw, info)), info);
      replaceDoc(d);
      setName(docName);
      setModified(mod);
      onReplaced();
      const miss = missingClasses(d, info);
      setMissing(miss.length ? miss : null);
      window.setTimeout(() => flow.fitView({ padding: 0.1 }), 50);
    },
    [info, flow, replaceDoc, onReplaced, setMissing],
  );

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
    [docRef, name, modified, lang, notify],
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
        if (name === from) setName(target);
      });
    },
    [lang, name, workflowFileOp],
  );

  const deleteWorkflow = useCallback(
    (file: string) =>
      void workflowFileOp('workflow_delete', { name: file }, () => {
        if (name === file) setName(null);
      }),
    [name, workflowFileOp],
  );

  const restoreDraft = useCallback(
    (accept: boolean) => {
      if (accept && draftOffer) openDoc(draftOffer, null);
      if (!accept) localStorage.removeItem(DRAFT_KEY);
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
