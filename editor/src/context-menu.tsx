import { useEffect, useState } from 'react';
import type { ObjectInfoEntry } from '../../engine/registry/registry.ts';
import { widgetDefs, type DocNode } from './doc.ts';
import { socketName, t, type Lang } from './i18n.ts';
import { convertedWidgets, linkableWidgets } from './widget-inputs.ts';

/** LiteGraph's node colours, as ComfyUI offers them: title colour and body colour. */
export const NODE_COLORS: Record<string, { color: string; bgcolor: string }> = {
  red: { color: '#322', bgcolor: '#533' },
  brown: { color: '#332922', bgcolor: '#593930' },
  green: { color: '#232', bgcolor: '#353' },
  blue: { color: '#223', bgcolor: '#335' },
  pale_blue: { color: '#2a363b', bgcolor: '#3f5159' },
  cyan: { color: '#233', bgcolor: '#355' },
  purple: { color: '#323', bgcolor: '#535' },
  yellow: { color: '#432', bgcolor: '#653' },
  black: { color: '#222', bgcolor: '#000' },
};

const SR_NAME = 'Node name for S&R';

export interface NodeMenuRequest {
  x: number;
  y: number;
  nodeId: number;
}

/** A node's changes as ComfyUI's node context menu makes them; pure, so tests and shortcuts can share them. */
export const nodeEdits = {
  title: (n: DocNode, title: string): DocNode => (title ? { ...n, title } : (({ title: _, ...rest }) => rest)(n)),
  color: (n: DocNode, name: string | null): DocNode => {
    const { color: _c, bgcolor: _b, ...rest } = n;
    return name && NODE_COLORS[name] ? { ...rest, ...NODE_COLORS[name] } : rest;
  },
  flag: (n: DocNode, flag: 'collapsed' | 'pinned'): DocNode => {
    const flags = { ...n.flags };
    if (flags[flag]) delete flags[flag];
    else flags[flag] = true;
    return { ...n, flags };
  },
  mode: (n: DocNode, mode: 2 | 4): DocNode => ({ ...n, mode: n.mode === mode ? 0 : mode }),
  srName: (n: DocNode, name: string): DocNode => ({ ...n, properties: { ...n.properties, [SR_NAME]: name } }),
};

/**
 * The node context menu (right click): title, colour, collapse, pin, bypass, mute, widget ↔ input
 * conversion (as ComfyUI's frontend before 1.16 offered it), properties, remove.
 */
export function NodeContextMenu(props: {
  lang: Lang;
  at: { x: number; y: number };
  node: DocNode;
  info: ObjectInfoEntry | undefined;
  onEdit: (fn: (n: DocNode) => DocNode) => void;
  onConvert: (widget: string, toInput: boolean) => void;
  onRemove: () => void;
  onClose: () => void;
}) {
  const { lang, node, onEdit, onClose } = props;
  const [colors, setColors] = useState(false);
  const [sub, setSub] = useState<'toInput' | 'toWidget' | null>(null);
  const defs = props.info ? widgetDefs(props.info) : [];
  const converted = convertedWidgets(node, defs);
  const linked = new Set(node.inputs.flatMap((i) => (i.widget && i.link !== null ? [i.widget.name] : [])));
  const toInput = linkableWidgets(defs).filter((w) => !converted.has(w.name) && !linked.has(w.name));
  useEffect(() => {
    const close = (e: MouseEvent) => !(e.target as HTMLElement).closest('.node-menu') && onClose();
    window.addEventListener('mousedown', close, true);
    return () => window.removeEventListener('mousedown', close, true);
  }, [onClose]);
  const act = (fn: () => void) => () => {
    fn();
    onClose();
  };
  const item = (id: string, label: string, fn: () => void) => (
    <button key={id} data-testid={`menu-${id}`} onClick={act(fn)}>
      {label}
    </button>
  );
  const convertList = (kind: 'toInput' | 'toWidget', names: string[]) => (
    <>
      <button data-testid={`menu-${kind}`} onClick={() => setSub(sub === kind ? null : kind)}>
        {t(kind === 'toInput' ? 'ctxToInput' : 'ctxToWidget', lang)} ▸
      </button>
      {sub === kind && (
        <div className="node-menu-sub">
          {names.map((name) => item(`${kind}-${name}`, socketName(name, lang), () => props.onConvert(name, kind === 'toInput')))}
        </div>
      )}
    </>
  );
  return (
    <div
      className="node-menu"
      data-testid="node-menu"
      style={{ left: props.at.x, top: props.at.y }}
      onContextMenu={(e) => e.preventDefault()}
    >
      {item('title', t('ctxTitle', lang), () => {
        const title = window.prompt(t('ctxTitle', lang), node.title ?? '');
        if (title !== null) onEdit((n) => nodeEdits.title(n, title));
      })}
      <button data-testid="menu-color" onClick={() => setColors(!colors)}>
        {t('ctxColor', lang)} ▸
      </button>
      {colors && (
        <div className="node-menu-colors">
          {item('color-none', t('ctxNoColor', lang), () => onEdit((n) => nodeEdits.color(n, null)))}
          {Object.entries(NODE_COLORS).map(([name, c]) => (
            <button
              key={name}
              data-testid={`menu-color-${name}`}
              title={name}
              className="swatch"
              style={{ background: c.bgcolor }}
              onClick={act(() => onEdit((n) => nodeEdits.color(n, name)))}
            />
          ))}
        </div>
      )}
      {item('collapse', t(node.flags?.collapsed ? 'ctxExpand' : 'ctxCollapse', lang), () => onEdit((n) => nodeEdits.flag(n, 'collapsed')))}
      {item('pin', t(node.flags?.pinned ? 'ctxUnpin' : 'ctxPin', lang), () => onEdit((n) => nodeEdits.flag(n, 'pinned')))}
      {item('bypass', t('ctxBypass', lang), () => onEdit((n) => nodeEdits.mode(n, 4)))}
      {item('mute', t('ctxMute', lang), () => onEdit((n) => nodeEdits.mode(n, 2)))}
      {toInput.length > 0 &&
        convertList(
          'toInput',
          toInput.map((w) => w.name),
        )}
      {converted.size > 0 && convertList('toWidget', [...converted])}
      {item('properties', `${t('ctxProperties', lang)}: ${SR_NAME}`, () => {
        const name = window.prompt(SR_NAME, String(node.properties?.[SR_NAME] ?? node.type));
        if (name !== null) onEdit((n) => nodeEdits.srName(n, name));
      })}
      {item('remove', t('ctxRemove', lang), props.onRemove)}
    </div>
  );
}
