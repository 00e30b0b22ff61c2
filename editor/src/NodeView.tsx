import { Handle, NodeResizeControl, NodeResizer, Position, type NodeProps, type Node } from '@xyflow/react';
import { memo, useMemo, useState } from 'react';
import type { ObjectInfoEntry } from '../../engine/registry/registry.ts';
import { GROUP_COLORS, PRIMITIVE, widgetDefs, type DocGroup, type DocInput, type DocNode, type WidgetDef } from './doc.ts';
import { socketName, useUiLang, type Lang } from './i18n.ts';
import { imageDropHandlers, ImageUploadWidget } from './ImageUpload.tsx';
import { NOTE_TYPES, NoteBody } from './NoteNode.tsx';
import { convertedWidgets } from './widget-inputs.ts';
import { blankRowsHeight, hasSlider, useWidgetsDrawn } from './widget-rows.tsx';

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

export type RerouteData = { id: number; type: string };
export type WeftRerouteNode = Node<RerouteData, 'weftReroute'>;

export type GroupData = { index: number; title: string; color?: string; onGroup: (index: number, patch: Partial<DocGroup>) => void };
export type WeftGroupNode = Node<GroupData, 'weftGroup'>;

export type CanvasNode = WeftFlowNode | WeftRerouteNode | WeftGroupNode;

// Widget definitions depend only on the class entry, which stays the same object until object_info reloads.
const widgetCache = new WeakMap<ObjectInfoEntry, WidgetDef[]>();
/** The description /object_info gives an input, shown on hover as ComfyUI does. */
function inputTooltip(info: ObjectInfoEntry | undefined, name: string): string | undefined {
  const spec = info?.input.required[name] ?? info?.input.optional?.[name];
  const opts: unknown = Array.isArray(spec) ? spec[1] : undefined;
  if (typeof opts !== 'object' || opts === null || !('tooltip' in opts)) return undefined;
  return typeof opts.tooltip === 'string' && opts.tooltip ? opts.tooltip : undefined;
}

function cachedWidgetDefs(info: ObjectInfoEntry): WidgetDef[] {
  let defs = widgetCache.get(info);
  if (!defs) widgetCache.set(info, (defs = widgetDefs(info)));
  return defs;
}

const TYPE_COLORS: Record<string, string> = {
  MODEL: '#b39ddb',
  CLIP: '#ffd54f',
  VAE: '#ef9a9a',
  CONDITIONING: '#ffa726',
  LATENT: '#f48fb1',
  IMAGE: '#64b5f6',
  MASK: '#81c784',
  CONTROL_NET: '#4db6ac',
  INT: '#9ccc65',
  FLOAT: '#aed581',
  STRING: '#90a4ae',
};

export function typeColor(t: string): string {
  return TYPE_COLORS[t] ?? '#bdbdbd';
}

const CATEGORY_COLORS: Record<string, string> = {
  loaders: '#3b3054',
  sampling: '#2f3f57',
  conditioning: '#4a3b25',
  latent: '#4a2d3b',
  image: '#24405a',
  mask: '#254a2f',
};

function headerColor(category: string | undefined): string {
  const parts = (category ?? '').split('/');
  for (const p of parts) if (CATEGORY_COLORS[p]) return CATEGORY_COLORS[p];
  return '#353535';
}

/**
 * A searchable choice list. Closed it is one button, which keeps big graphs light: a native select
 * would put every option of every combo into the DOM.
 */
function Combo({ value, choices, onChange }: { value: string; choices: string[]; onChange: (v: string) => void }) {
  const [open, setOpen] = useState(false);
  const [q, setQ] = useState('');
  const [active, setActive] = useState(0);
  const list = useMemo(() => {
    const needle = q.toLowerCase();
    return needle ? choices.filter((c) => c.toLowerCase().includes(needle)) : choices;
  }, [q, choices]);
  const missing = !choices.includes(value);
  if (!open) {
    return (
      <button
        type="button"
        className={missing ? 'combo-value missing' : 'combo-value'}
        data-testid="combo-value"
        title={value}
        onClick={() => {
          setQ('');
          setActive(Math.max(0, choices.indexOf(value)));
          setOpen(true);
        }}
      >
        {value}
        {missing ? ' (missing)' : ''}
      </button>
    );
  }
  const pick = (c: string) => {
    setOpen(false);
    if (c !== value) onChange(c);
  };
  return (
    <div className="combo-popup nowheel" data-testid="combo-popup">
      <input
        autoFocus
        data-testid="combo-filter"
        value={q}
        placeholder={value}
        onChange={(e) => {
          setQ(e.target.value);
          setActive(0);
        }}
        onBlur={() => setOpen(false)}
        onKeyDown={(e) => {
          if (e.key === 'ArrowDown') setActive((a) => Math.min(a + 1, list.length - 1));
          else if (e.key === 'ArrowUp') setActive((a) => Math.max(a - 1, 0));
          else if (e.key === 'Enter' && list[active] !== undefined) pick(list[active]);
          else if (e.key === 'Escape') setOpen(false);
          else return;
          e.preventDefault();
        }}
      />
      <ul>
        {list.slice(0, 300).map((c, i) => (
          // mousedown, not click: the input's blur would close the list before a click lands.
          <li
            key={c}
            className={i === active ? 'active' : c === value ? 'current' : ''}
            onMouseDown={(e) => {
              e.preventDefault();
              pick(c);
            }}
          >
            {c}
          </li>
        ))}
      </ul>
    </div>
  );
}

function Widget({
  w,
  value,
  onChange,
  socket,
  lang,
  tooltip,
}: {
  w: WidgetDef;
  value: unknown;
  onChange: (v: unknown) => void;
  socket: boolean;
  lang: Lang;
  tooltip?: string;
}) {
  // Every widget doubles as an input socket: drop a link on it to drive the value from another node.
  const label = (
    <span className="w-label" title={tooltip}>
      {socket && !w.extra && <Handle type="target" position={Position.Left} id={`w-${w.name}`} className="widget-handle" />}
      {socketName(w.name, lang)}
    </span>
  );
  switch (w.kind) {
    case 'INT':
    case 'FLOAT': {
      const min = typeof w.options.min === 'number' ? w.options.min : undefined;
      const max = typeof w.options.max === 'number' ? w.options.max : undefined;
      const step = typeof w.options.step === 'number' ? w.options.step : w.kind === 'INT' ? 1 : 0.01;
      const slider = hasSlider(w);
      return (
        <label className={slider ? 'widget slider nodrag' : 'widget nodrag'} data-testid={`widget-${w.name}`}>
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
        <label className={w.options.multiline ? 'widget tall nodrag' : 'widget nodrag'} data-testid={`widget-${w.name}`}>
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
        <div className="widget nodrag" data-testid={`widget-${w.name}`}>
          {label}
          <Combo value={String(value ?? '')} choices={w.choices ?? []} onChange={onChange} />
        </div>
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
  const lang = useUiLang();
  const [editingNote, setEditingNote] = useState(false);
  const note = NOTE_TYPES.has(node.type);
  const widgets = info ? cachedWidgetDefs(info) : [];
  // LoadImage-style nodes: the combo before the upload widget names the image.
  const upload = widgets.find((w) => w.kind === 'UPLOAD');
  const setImage = upload ? (v: string) => data.onWidget(node.id, upload.index - 1, v) : undefined;
  // Linked widgets and widgets converted to inputs show as sockets instead.
  const converted = convertedWidgets(node, widgets);
  const asSocket = (i: DocInput) => !i.widget || i.link !== null || converted.has(i.widget.name);
  const linkedWidgetNames = new Set(node.inputs.filter((i) => i.widget && asSocket(i)).map((i) => i.widget!.name));
  const sockets = node.inputs.filter(asSocket);
  const shown = widgets.filter(
    (w) => !linkedWidgetNames.has(w.name) && !(w.kind === 'CONTROL' && linkedWidgetNames.has(widgets[w.index - 1]?.name)),
  );
  const blankHeight = useWidgetsDrawn() || note ? undefined : blankRowsHeight(shown);
  const cls = [
    'weft-node',
    selected ? 'selected' : '',
    runtime.running ? 'running' : '',
    !info && !note ? 'missing' : '',
    note ? 'weft-note' : '',
    node.mode === 2 ? 'muted' : '',
    node.mode === 4 ? 'bypassed' : '',
    runtime.errors?.length ? 'has-error' : '',
  ]
    .filter(Boolean)
    .join(' ');
  return (
    <div
      className={cls}
      data-testid={`node-${node.id}`}
      data-node-type={node.type}
      style={{ width: node.size[0] }}
      {...imageDropHandlers(setImage, (msg) => window.alert(msg))}
    >
      {selected && <NodeResizeControl position="bottom-right" resizeDirection="horizontal" minWidth={140} className="weft-node-resize" />}
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
                  <span
                    className={runtime.errors?.some((e) => e.input === inp.name) ? 'socket-error' : ''}
                    title={inputTooltip(info, inp.name)}
                  >
                    {inp.label ?? socketName(inp.name, lang)}
                  </span>
                </div>
              ) : null,
            )}
          </div>
          <div className="weft-outputs">
            {node.outputs.map((out, i) => (
              <div className="socket-row out" key={`out-${i}`}>
                <span title={info?.output_tooltips?.[i] || undefined}>{socketName(out.name, lang)}</span>
                <Handle type="source" position={Position.Right} id={`out-${i}`} style={{ background: typeColor(out.type) }} />
              </div>
            ))}
          </div>
        </div>
        {note && (
          <NoteBody node={node} editing={editingNote} setEditing={setEditingNote} onText={(text) => data.onWidget(node.id, 0, text)} />
        )}
        {blankHeight !== undefined && shown.length > 0 && <div className="widget-rows-blank" style={{ height: blankHeight }} />}
        {(blankHeight === undefined ? shown : []).map((w) =>
          w.kind === 'UPLOAD' && setImage ? (
            <ImageUploadWidget key={w.index} value={String(node.widgets_values?.[w.index - 1] ?? '')} lang={lang} onChange={setImage} />
          ) : (
            <Widget
              lang={lang}
              key={w.index}
              w={w}
              tooltip={inputTooltip(info, w.name)}
              socket={node.type !== PRIMITIVE}
              value={node.widgets_values?.[w.index]}
              onChange={(v) => data.onWidget(node.id, w.index, v)}
            />
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

function sameApartFromPosition(a: DocNode, b: DocNode): boolean {
  return (
    a === b ||
    (a.id === b.id &&
      a.type === b.type &&
      a.inputs === b.inputs &&
      a.outputs === b.outputs &&
      a.widgets_values === b.widgets_values &&
      a.mode === b.mode &&
      a.size === b.size &&
      a.color === b.color &&
      a.title === b.title)
  );
}

// Dragging replaces a node's document entry on every frame; its body only needs redrawing when something else changed.
export const NodeView = memo(
  NodeViewImpl,
  (p, q) =>
    p.selected === q.selected &&
    p.data.info === q.data.info &&
    p.data.runtime === q.data.runtime &&
    p.data.title === q.data.title &&
    p.data.onWidget === q.data.onWidget &&
    sameApartFromPosition(p.data.node, q.data.node),
);

/** A reroute point: a small dot coloured by the type flowing through it. */
function RerouteViewImpl({ data, selected }: NodeProps<WeftRerouteNode>) {
  const color = typeColor(data.type);
  return (
    <div
      className={selected ? 'weft-reroute selected' : 'weft-reroute'}
      data-testid={`node-${data.id}`}
      data-node-type="Reroute"
      title={data.type}
    >
      <Handle type="target" position={Position.Left} id="in-0" style={{ background: color }} />
      <span className="weft-reroute-dot" style={{ background: color }} />
      <Handle type="source" position={Position.Right} id="out-0" style={{ background: color }} />
    </div>
  );
}

export const RerouteView = memo(RerouteViewImpl);

/** A group frame: drag it by its title, double-click the title to rename, resize it when selected. */
function GroupViewImpl({ data, selected }: NodeProps<WeftGroupNode>) {
  const [editing, setEditing] = useState(false);
  const color = data.color ?? GROUP_COLORS[0];
  const commit = (title: string) => {
    setEditing(false);
    if (title.trim() && title !== data.title) data.onGroup(data.index, { title: title.trim() });
  };
  return (
    <>
      <NodeResizer isVisible={selected} minWidth={140} minHeight={80} color={color} />
      <div
        className="weft-group"
        data-testid={`group-${data.title}`}
        style={{ borderColor: color, background: `color-mix(in srgb, ${color} 14%, transparent)` }}
      >
        <div
          className="weft-group-title"
          style={{ background: `color-mix(in srgb, ${color} 45%, transparent)` }}
          onDoubleClick={(e) => {
            e.stopPropagation();
            setEditing(true);
          }}
        >
          {editing ? (
            <input
              autoFocus
              className="nodrag"
              data-testid="group-title-input"
              defaultValue={data.title}
              onBlur={(e) => commit(e.target.value)}
              onKeyDown={(e) => {
                if (e.key === 'Enter') commit(e.currentTarget.value);
                else if (e.key === 'Escape') setEditing(false);
              }}
            />
          ) : (
            data.title
          )}
          {selected && !editing && (
            <span className="weft-group-colors nodrag">
              {GROUP_COLORS.map((c) => (
                <button
                  key={c}
                  type="button"
                  aria-label={c}
                  data-testid={`group-color-${c}`}
                  className={c === color ? 'current' : ''}
                  style={{ background: c }}
                  onClick={() => data.onGroup(data.index, { color: c })}
                />
              ))}
            </span>
          )}
        </div>
      </div>
    </>
  );
}

export const GroupView = memo(GroupViewImpl);
