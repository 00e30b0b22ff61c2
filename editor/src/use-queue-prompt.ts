import { useCallback, type RefObject } from 'react';
import { convertWorkflowToPrompt } from '../../engine/graph/convert.ts';
import type { ObjectInfo } from '../../engine/registry/registry.ts';
import { api } from './client.ts';
import { applyControlAfterGenerate, applyPrimitives, type WorkflowDoc } from './doc.ts';
import type { ExecutionAction, NodeError } from './execution-state.ts';
import type { MissingClass } from './use-file-ops.ts';

/** ComfyUI's answer to a refused prompt. */
interface PromptRefusal {
  error?: { message?: string };
  node_errors?: Record<string, { errors: { message: string; details: string; extra_info?: { input_name?: string } }[] }>;
}

export interface QueuePromptDeps {
  docRef: RefObject<WorkflowDoc>;
  setDoc: (fn: (d: WorkflowDoc) => WorkflowDoc) => void;
  info: ObjectInfo;
  notify: (message: string) => void;
  dispatch: (action: ExecutionAction) => void;
  setMissing: (m: MissingClass[] | null) => void;
}

/**
 * Queues the open document `count` times (the batch count; seeds set to increment or randomize change
 * between runs, as in ComfyUI); `front` puts the runs ahead of the pending ones. Refusals are shown on
 * their nodes and inputs, and stop the batch.
 */
export function useQueuePrompt({ docRef, setDoc, info, notify, dispatch, setMissing }: QueuePromptDeps) {
  return useCallback(
    async (opts: { front?: boolean; count?: number } = {}) => {
      let doc = docRef.current;
      // Cleared before the request, not after its answer: a run that fails at once sends its
      // execution_error over the socket before the answer to the POST arrives, and clearing then
      // would wipe the error it just put on its node.
      dispatch({ type: 'queued' });
      for (let i = 0; i < Math.max(1, opts.count ?? 1); i++) {
        const d = applyPrimitives(doc, info);
        const conv = convertWorkflowToPrompt(d, info);
        if (conv.missing.length) {
          setMissing(conv.missing.map((m) => ({ class_type: m.class_type, node_ids: m.node_ids.map(Number) })));
          return;
        }
        try {
          await api.queuePrompt(conv.prompt, d, { front: opts.front });
        } catch (e) {
          const body = (e as { body?: PromptRefusal }).body;
          if (body?.node_errors) {
            const errors: Record<string, NodeError[]> = {};
            for (const [id, ne] of Object.entries(body.node_errors))
              errors[id] = ne.errors.map((er) => ({
                input: er.extra_info?.input_name,
                message: `${er.message}${er.details ? `: ${er.details}` : ''}`,
              }));
            dispatch({ type: 'node_errors', errors });
          }
          notify(body?.error?.message ?? (e as Error).message);
          return;
        }
        doc = applyControlAfterGenerate(doc, info);
        setDoc((x) => applyControlAfterGenerate(x, info));
      }
    },
    [docRef, setDoc, info, notify, dispatch, setMissing],
  );
}
