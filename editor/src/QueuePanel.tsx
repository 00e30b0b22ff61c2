import { useEffect, useState } from 'react';
import type { ObjectInfo } from '../../engine/registry/registry.ts';
import type { HistoryItem, ImageRef } from './api.ts';
import { nodeTitle, t, type Lang } from './i18n.ts';
import { stripPaths } from './redact-paths.ts';

/** A queue item as `/queue` and `/history` carry it: [number, prompt_id, prompt, extra_data, outputs to execute]. */
type QueueItem = [
  number,
  string,
  Record<string, { class_type?: string; _meta?: { title?: string } }>?,
  { extra_pnginfo?: { workflow?: unknown } }?,
  string[]?,
];

interface WorkflowLike {
  nodes?: { id: number | string; type?: string; title?: string }[];
}

/** A node of a queued prompt as the canvas names it: its title in the workflow, else its class's display name. */
export function promptNodeName(item: readonly unknown[], nodeId: string, info: ObjectInfo, lang: Lang): string {
  const [, , prompt, extra] = item as QueueItem;
  const wf = extra?.extra_pnginfo?.workflow as WorkflowLike | undefined;
  const wfNode = wf?.nodes?.find((n) => String(n.id) === nodeId);
  if (wfNode?.title) return wfNode.title;
  const cls = prompt?.[nodeId]?.class_type ?? wfNode?.type;
  if (prompt?.[nodeId]?._meta?.title && prompt[nodeId]._meta!.title !== cls) return prompt[nodeId]._meta!.title!;
  return cls ? nodeTitle(cls, info[cls]?.display_name, lang) : `#${nodeId}`;
}

/** The output nodes a prompt runs, by name. */
function outputNames(item: readonly unknown[], info: ObjectInfo, lang: Lang): string {
  const outs = (item as QueueItem)[4] ?? [];
  return [...new Set(outs.map((id) => promptNodeName(item, String(id), info, lang)))].join(', ');
}

type StatusMessage = [string, { timestamp?: number; node_id?: string; node_type?: string; exception_message?: string }];

function messagesOf(h: HistoryItem): StatusMessage[] {
  return ((h.status as { messages?: StatusMessage[] } | undefined)?.messages ?? []).filter((m) => Array.isArray(m));
}

/** How long a finished prompt ran (execution_start to its last status message), in seconds. */
export function runSeconds(h: HistoryItem): number | undefined {
  const msgs = messagesOf(h);
  const start = msgs.find((m) => m[0] === 'execution_start')?.[1].timestamp;
  const end = [...msgs].reverse().find((m) => m[0] !== 'execution_cached' && m[0] !== 'execution_start')?.[1].timestamp;
  return start !== undefined && end !== undefined ? (end - start) / 1000 : undefined;
}

function finishedAt(h: HistoryItem): number | undefined {
  return messagesOf(h).at(-1)?.[1].timestamp;
}

export function imagesOf(h: HistoryItem): ImageRef[] {
  return Object.values(h.outputs ?? {}).flatMap((o) => o.images ?? []);
}

export function QueuePanel(props: {
  lang: Lang;
  info: ObjectInfo;
  running: string[];
  pending: string[];
  history: [string, HistoryItem][];
  /** The running node's id, for its name beside the running prompt. */
  runningNode: string | null;
  viewUrl: (img: ImageRef) => string;
  onOpenImage: (src: string, promptId: string) => void;
  onLoadWorkflow: (workflow: unknown) => void;
  onDeletePending: (id: string) => void;
  onClearPending: () => void;
  onDeleteHistory: (id: string) => void;
  onClearHistory: () => void;
}) {
  const { lang, info } = props;
  const [items, setItems] = useState<Map<string, QueueItem>>(new Map());
  const key = [...props.running, ...props.pending].join(',');
  useEffect(() => {
    if (!key) return setItems(new Map());
    let live = true;
    void fetch('/api/queue')
      .then((r) => r.json() as Promise<{ queue_running: QueueItem[]; queue_pending: QueueItem[] }>)
      .then((q) => live && setItems(new Map([...q.queue_running, ...q.queue_pending].map((i) => [String(i[1]), i]))))
      .catch(() => {});
    return () => {
      live = false;
    };
  }, [key]);
  const row = (id: string, state: 'running' | 'pending') => {
    const item = items.get(id);
    return (
      <li key={id} className={`queue-item ${state}`} data-testid={`queue-item-${state}`}>
        <span className="queue-number">#{item?.[0] ?? '…'}</span>
        <span className="queue-names" data-testid="queue-names">
          {item ? outputNames(item, info, lang) : '…'}
        </span>
        {state === 'running' && props.runningNode && item && (
          <span className="queue-node" data-testid="queue-running-node">
            ▶ {promptNodeName(item, props.runningNode, info, lang)}
          </span>
        )}
        {state === 'pending' && (
          <button data-testid="queue-delete" onClick={() => props.onDeletePending(id)}>
            {t('delete', lang)}
          </button>
        )}
      </li>
    );
  };
  return (
    <aside className="panel queue-panel" data-testid="panel-queue">
      <h3>{t('running', lang)}</h3>
      <ul>{props.running.map((id) => row(id, 'running'))}</ul>
      <h3>{t('pending', lang)}</h3>
      <ul>{props.pending.map((id) => row(id, 'pending'))}</ul>
      <button onClick={props.onClearPending}>{t('clear', lang)}</button>
      <h3>{t('history', lang)}</h3>
      <ul data-testid="queue-history">
        {props.history.map(([id, h]) => {
          const wf = h.prompt[3]?.extra_pnginfo?.workflow;
          const error = h.status?.status_str === 'error';
          const err = messagesOf(h).find((m) => m[0] === 'execution_error')?.[1];
          const secs = runSeconds(h);
          const at = finishedAt(h);
          const thumb = imagesOf(h)[0];
          return (
            <li key={id} className={error ? 'history-item history-error' : 'history-item'} data-testid="history-item">
              {thumb ? (
                <img
                  className="history-thumb"
                  data-testid="history-thumb"
                  src={props.viewUrl(thumb)}
                  alt=""
                  onClick={() => props.onOpenImage(props.viewUrl(thumb), id)}
                />
              ) : (
                <span className="history-thumb empty" />
              )}
              <span className="history-text">
                <span className="history-id" title={id}>
                  #{h.prompt[0]} {outputNames(h.prompt, info, lang)}
                </span>
                <small data-testid="history-time">
                  {error ? t('failed', lang) : t('done', lang)}
                  {secs !== undefined ? ` · ${secs.toFixed(1)} s` : ''}
                  {at !== undefined ? ` · ${new Date(at).toLocaleTimeString()}` : ''}
                </small>
                {err?.node_id && (
                  <small className="history-error-text" data-testid="history-error">
                    {promptNodeName(h.prompt, String(err.node_id), info, lang)}: {stripPaths(String(err.exception_message ?? ''))}
                  </small>
                )}
              </span>
              {wf !== undefined && (
                <button data-testid="history-load" onClick={() => props.onLoadWorkflow(wf)}>
                  {t('loadWorkflow', lang)}
                </button>
              )}
              <button onClick={() => props.onDeleteHistory(id)}>{t('delete', lang)}</button>
            </li>
          );
        })}
      </ul>
      <button onClick={props.onClearHistory}>{t('clear', lang)}</button>
    </aside>
  );
}
