import type { HistoryItem } from '../api.ts';
import { api } from '../client.ts';
import type { WorkflowDoc } from '../doc.ts';
import { t, type Lang } from '../i18n.ts';
import type { QueueState } from '../use-connection.ts';

/** The running and pending prompts, and the history with each entry's workflow to reopen. */
export function QueuePanel(props: {
  lang: Lang;
  queue: QueueState;
  history: [string, HistoryItem][];
  refreshHistory: () => void;
  onLoadWorkflow: (wf: WorkflowDoc) => void;
}) {
  const { lang, queue, history, refreshHistory } = props;
  return (
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
                <button data-testid="history-load" onClick={() => props.onLoadWorkflow(wf)}>
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
  );
}
