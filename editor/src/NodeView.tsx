import { Handle, Position, type NodeProps, type Node } from '@xyflow/react';
import { memo } from 'react';
import type { ObjectInfoEntry } from '../../engine/registry/registry.ts';
import { widgetDefs, type DocNode, type WidgetDef } from './doc.ts';

export interface NodeRuntime {
  running?: boolean;
  progress?: { value: number; max: number };
  preview?: string;
  images?: string[];
  errors?: { input?: string; message: string }[];
}

export type WeftNodeData = {
  node: DocNode;
  info?: ObjectInfoEntry;
  runtime: NodeRuntime;
  title: string;
  onWidget: (nodeId: number, index: number, value: unknown) => void;
};

export type WeftFlowNode = Node<WeftNodeData, 'weft'>;

const TYPE_COLORS: Record<string, string> = {
  MODEL: '#b39ddb', CLIP: '#ffd54f', VAE: '#ef9a9a', CONDITIONING: '#ffa726', LATENT: '#f48fb1',
  IMAGE: '#64b5f6', MASK: '#81c784', CONTROL_NET: '#4db6ac', INT: '#9ccc65', FLOAT: '#aed581', STRING: '#90a4ae',
};

export function typeColor(t: string): string {
  return TYPE_COLORS[t] ?? '#bdbdbd';
}

const CATEGORY_COLORS: Record<string, string> = {
  loaders: '#3b3054', sampling: '#2f3f57', conditioning: '#4a3b25', latent: '#4a2d3b', image: '#24405a', mask: '#254a2f',
};

function headerColor(category: string | undefined): string {
  const parts = (category ?? '').split('/');
  for (const p of parts) if (CATEGORY_COLORS[p]) return CATEGORY_COLORS[p];
  return '#353535';
}

function Widget({ w, value, onChange }: { w: WidgetDef; value: unknown; onChange: (v: unknown) => void }) {
  // Every widget doubles as an input socket: drop a link on it to drive the value from another node.
  const label = (
    <span className="w-label">
      {!w.extra && <Handle type="target" position={Position.Left} id={`w-${w.name}`} className="widget-handle" />}
      {w.name}
    </span>
  );
  switch (w.kind) {
    case 'INT':
    case 'FLOAT': {
      const min = typeof w.options.min === 'number' ? w.options.min : undefined;
      const max = typeof w.options.max === 'number' ? w.options.max : undefined;
      const step = typeof w.options.step === 'number' ? w.options.step : w.kind === 'INT' ? 1 : 0.01;
      const slider = min !== undefined && max !== undefined && max - min <= 100 && w.options.display !== 'number';
      return (
        <label className="widget nodrag" data-testid={`widget-${w.name}`}>
          {label}
          {slider && (
            <input type="range" min={min} max={max} step={step} value={Number(value)} onChange={(e) => onChange(Number(e.target.value))} />
          )}
          <input
            type="number"
            min={min}
            max={max}
            step={step}
            value={String(value ?? '')}
            onChange={(e) => onChange(w.kind === 'INT' ? Math.round(Number(e.target.value)) : Number(e.target.value))}
          />
        </label>
      );
    }
    case 'STRING':
      return (
        <label className="widget nodrag" data-testid={`widget-${w.name}`}>
          {label}
          {w.options.multiline ? (
            <textarea rows={3} value={String(value ?? '')} onChange={(e) => onChange(e.target.value)} />
          ) : (
            <input type="text" value={String(value ?? '')} onChange={(e) => onChange(e.target.value)} />
          )}
        </label>
      );
    case 'BOOLEAN':
      return (
        <label className="widget nodrag" data-testid={`widget-${w.name}`}>
          {label}
          <input type="checkbox" checked={Boolean(value)} onChange={(e) => onChange(e.target.checked)} />
        </label>
      );
    case 'COMBO':
      return (
        <label className="widget nodrag" data-testid={`widget-${w.name}`}>
          {label}
          <select value={String(value ?? '')} onChange={(e) => onChange(e.target.value)}>
            {!(w.choices ?? []).includes(String(value)) && <option value={String(value)}>{String(value)} (missing)</option>}
            {(w.choices ?? []).map((c) => (
              <option key={c} value={c}>
                {c}
              </option>
            ))}
          </select>
        </label>
      );
    case 'CONTROL':
      return (
        <label className="widget nodrag" data-testid="widget-control_after_generate">
          {label}
          <select value={String(value ?? 'randomize')} onChange={(e) => onChange(e.target.value)}>
            {['fixed', 'increment', 'decrement', 'randomize'].map((c) => (
              <option key={c}>{c}</option>
            ))}
          </select>
        </label>
      );
    default:
      return null;
  }
}

function NodeViewImpl({ data, selected }: NodeProps<WeftFlowNode>) {
  const { node, info, runtime } = data;
  const widgets = info ? widgetDefs(info) : [];
  const linkedWidgetNames = new Set(node.inputs.filter((i) => i.widget && i.link !== null).map((i) => i.widget!.name));
  const sockets = node.inputs.filter((i) => !i.widget || i.link !== null);
  const cls = ['weft-node', selected ? 'selected' : '', runtime.running ? 'running' : '', !info ? 'missing' : '', node.mode === 2 ? 'muted' : '', node.mode === 4 ? 'bypassed' : '', runtime.errors?.length ? 'has-error' : '']
    .filter(Boolean)
    .join(' ');
  return (
    <div className={cls} data-testid={`node-${node.id}`} data-node-type={node.type} style={{ width: node.size[0] }}>
      <div className="weft-node-title" style={{ background: node.color ?? headerColor(info?.category) }}>
        {data.title}
      </div>
      {runtime.progress && (
        <div className="weft-progress" data-testid={`progress-${node.id}`}>
          <div style={{ width: `${(100 * runtime.progress.value) / Math.max(1, runtime.progress.max)}%` }} />
        </div>
      )}
      <div className="weft-node-body">
        <div className="weft-sockets">
          <div className="weft-inputs">
            {node.inputs.map((inp, i) =>
              sockets.includes(inp) ? (
                <div className="socket-row" key={`in-${i}`}>
                  <Handle type="target" position={Position.Left} id={`in-${i}`} style={{ background: typeColor(inp.type) }} />
                  <span className={runtime.errors?.some((e) => e.input === inp.name) ? 'socket-error' : ''}>{inp.label ?? inp.name}</span>
                </div>
              ) : null,
            )}
          </div>
          <div className="weft-outputs">
            {node.outputs.map((out, i) => (
              <div className="socket-row out" key={`out-${i}`}>
                <span>{out.name}</span>
                <Handle type="source" position={Position.Right} id={`out-${i}`} style={{ background: typeColor(out.type) }} />
              </div>
            ))}
          </div>
        </div>
        {widgets.map((w) =>
          linkedWidgetNames.has(w.name) ? null : (
            <Widget key={w.index} w={w} value={node.widgets_values[w.index]} onChange={(v) => data.onWidget(node.id, w.index, v)} />
          ),
        )}
        {runtime.errors?.map((e, i) => (
          <div className="node-error" key={i} data-testid={`node-error-${node.id}`}>
            {e.input ? `${e.input}: ` : ''}
            {e.message}
          </div>
        ))}
        {runtime.preview && <img className="node-preview" src={runtime.preview} alt="preview" data-testid={`preview-${node.id}`} />}
        {runtime.images?.map((src) => (
          <img key={src} className="node-image" src={src} alt="output" data-testid={`output-image-${node.id}`} />
        ))}
      </div>
    </div>
  );
}

export const NodeView = memo(NodeViewImpl);
