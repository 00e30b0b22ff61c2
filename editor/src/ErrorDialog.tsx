import { useState } from 'react';
import { t, type Lang } from './i18n.ts';
import { stripPaths } from './redact-paths.ts';

/** What the editor keeps of an `execution_error` message (ComfyUI's payload, less the inputs). */
export interface RunError {
  promptId: string;
  nodeId: string;
  nodeType: string;
  /** The node's title on the canvas when the error came (its class's display name, or the user's title). */
  nodeName: string;
  exceptionType: string;
  message: string;
  traceback: string[];
}

export function runErrorOf(data: Record<string, unknown>, nodeName: (id: string, type: string) => string): RunError {
  const nodeId = String(data.node_id ?? '');
  const nodeType = String(data.node_type ?? '');
  return {
    promptId: String(data.prompt_id ?? ''),
    nodeId,
    nodeType,
    nodeName: nodeName(nodeId, nodeType),
    exceptionType: String(data.exception_type ?? 'Error'),
    message: stripPaths(String(data.exception_message ?? '')),
    traceback: Array.isArray(data.traceback) ? data.traceback.map((l) => stripPaths(String(l))) : [],
  };
}

/**
 * A run-time failure stays on screen until it is closed (a notice would vanish while the user looks
 * elsewhere); it names the node as the canvas shows it and never shows server file-system paths.
 */
export function ErrorDialog(props: { error: RunError; lang: Lang; onClose: () => void; onShowNode?: (nodeId: string) => void }) {
  const { error, lang } = props;
  const [details, setDetails] = useState(false);
  return (
    <div className="modal" data-testid="error-dialog">
      <div className="dialog error-dialog">
        <h3>{t('runError', lang)}</h3>
        <p data-testid="error-node">
          {error.nodeName} <small>#{error.nodeId}</small>
        </p>
        <pre className="error-message" data-testid="error-message">
          {error.exceptionType}: {error.message}
        </pre>
        {error.traceback.length > 0 && (
          <details open={details} onToggle={(e) => setDetails(e.currentTarget.open)}>
            <summary>traceback</summary>
            <pre className="error-trace" data-testid="error-traceback">
              {error.traceback.join('')}
            </pre>
          </details>
        )}
        <div className="dialog-row">
          {props.onShowNode && (
            <button data-testid="error-show-node" onClick={() => props.onShowNode?.(error.nodeId)}>
              #{error.nodeId}
            </button>
          )}
          <button
            data-testid="error-copy"
            onClick={() =>
              void navigator.clipboard?.writeText(`${error.nodeName} (#${error.nodeId}): ${error.exceptionType}: ${error.message}`)
            }
          >
            Copy
          </button>
          <button className="primary" data-testid="error-close" onClick={props.onClose}>
            {t('close', lang)}
          </button>
        </div>
      </div>
    </div>
  );
}
