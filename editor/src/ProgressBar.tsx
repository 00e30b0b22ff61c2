import { useEffect } from 'react';
import type { NodeRuntime } from './NodeView.tsx';

/** The running node and how far its steps are, from the nodes' runtime states. */
export function runProgress(runtime: Record<string, NodeRuntime>): { nodeId: string; value: number; max: number } | null {
  for (const [id, r] of Object.entries(runtime))
    if (r.running) return { nodeId: id, value: r.progress?.value ?? 0, max: r.progress?.max ?? 0 };
  return null;
}

/** ComfyUI's tab title: `[45%][2] name - Weft` while a prompt runs (percent of the node's steps, then the queue size). */
export function progressTitle(p: { value: number; max: number } | null, queued: number, docName: string | null): string {
  const pct = p && p.max > 0 ? `[${Math.round((100 * p.value) / p.max)}%]` : '';
  const q = queued > 0 ? `[${queued}]` : '';
  return `${pct}${q}${pct || q ? ' ' : ''}${docName ?? 'untitled'} - Weft`;
}

/** A thin bar across the top of the window with the running node's name and step, and the tab title. */
export function ProgressBar(props: {
  runtime: Record<string, NodeRuntime>;
  queued: number;
  docName: string | null;
  nodeName: (id: string) => string;
}) {
  const p = runProgress(props.runtime);
  const title = progressTitle(p, props.queued, props.docName);
  useEffect(() => {
    document.title = title;
  }, [title]);
  if (!p) return null;
  const pct = p.max > 0 ? (100 * p.value) / p.max : 0;
  return (
    <div className="top-progress" data-testid="top-progress" title={`${props.nodeName(p.nodeId)} ${p.value}/${p.max}`}>
      <div className="top-progress-fill" style={{ width: `${pct}%` }} />
      <span className="top-progress-label" data-testid="top-progress-label">
        {props.nodeName(p.nodeId)}
        {p.max > 0 ? ` ${p.value}/${p.max}` : ''}
      </span>
    </div>
  );
}
