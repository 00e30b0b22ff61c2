import type { ObjectInfoEntry } from '../registry/registry.ts';

export const PRIMITIVES = new Set(['INT', 'FLOAT', 'STRING', 'BOOLEAN']);

/** Whether an object_info input spec becomes a widget (rather than a socket only). */
export function isWidgetSpec(spec: readonly unknown[]): boolean {
  const [t, o] = spec as [unknown, Record<string, unknown> | undefined];
  if (o?.forceInput) return false;
  return Array.isArray(t) || t === 'COMBO' || (typeof t === 'string' && PRIMITIVES.has(t));
}

/** One widget of a node as ComfyUI's frontend creates it (§3.4 of comfyui-compat.md). */
export interface WidgetDef {
  /** Input name, or the extra widget's name (control_after_generate, upload, control_filter_list). */
  name: string;
  kind: 'INT' | 'FLOAT' | 'STRING' | 'BOOLEAN' | 'COMBO' | 'CONTROL' | 'UPLOAD' | 'FILTER';
  options: Record<string, unknown>;
  choices?: string[];
  /** Index in widgets_values. */
  index: number;
  /** Extras are saved in widgets_values but never sent in the prompt. */
  extra: boolean;
}

/** Widgets of a class in ComfyUI's order, including the extra values the frontend saves (§3.4). */
export function widgetDefs(info: ObjectInfoEntry): WidgetDef[] {
  const out: WidgetDef[] = [];
  const all = { ...(info.input.required ?? {}), ...(info.input.optional ?? {}) };
  const order = [
    ...(info.input_order?.required ?? Object.keys(info.input.required ?? {})),
    ...(info.input_order?.optional ?? Object.keys(info.input.optional ?? {})),
  ];
  for (const name of order) {
    const spec = all[name] as unknown[] | undefined;
    if (!spec) continue;
    const [t, o] = spec as [unknown, Record<string, unknown> | undefined];
    const options = o ?? {};
    if (options.forceInput) continue;
    if (Array.isArray(t) || t === 'COMBO') {
      const choices = (Array.isArray(t) ? t : ((options.options as unknown[] | undefined) ?? [])).map(String);
      out.push({ name, kind: 'COMBO', options, choices, index: out.length, extra: false });
      if (options.image_upload) out.push({ name: 'upload', kind: 'UPLOAD', options: {}, index: out.length, extra: true });
      if (options.control_after_generate) {
        out.push({ name: 'control_after_generate', kind: 'CONTROL', options: {}, index: out.length, extra: true });
        out.push({ name: 'control_filter_list', kind: 'FILTER', options: {}, index: out.length, extra: true });
      }
    } else if (typeof t === 'string' && PRIMITIVES.has(t)) {
      out.push({ name, kind: t as WidgetDef['kind'], options, index: out.length, extra: false });
      const seedLike = t === 'INT' && (name === 'seed' || name === 'noise_seed');
      if ((t === 'INT' || t === 'FLOAT') && (options.control_after_generate || seedLike)) {
        out.push({ name: 'control_after_generate', kind: 'CONTROL', options: {}, index: out.length, extra: true });
      }
    }
  }
  return out;
}

/**
 * Widget values of a file saved before the frontend stored the upload button's value: such files
 * hold one value fewer (LoadImageMask `["x.png", "red"]` where today's hold `["x.png", "image", "red"]`),
 * so read in order every widget after the button would take its neighbour's value. The button's value
 * is put back where it is missing; other lists are returned as they are.
 */
export function alignLegacyWidgetValues(defs: readonly WidgetDef[], values: unknown[]): unknown[] {
  const upload = defs.findIndex((w) => w.kind === 'UPLOAD');
  if (upload < 0 || values.length !== defs.length - 1 || values[upload] === 'image') return values;
  return [...values.slice(0, upload), 'image', ...values.slice(upload)];
}

/** The value a new widget starts with (the frontend's defaults, including the extras). */
export function defaultWidgetValue(w: WidgetDef): unknown {
  if (w.kind === 'CONTROL') return typeof w.options.control_after_generate === 'string' ? w.options.control_after_generate : 'randomize';
  if (w.kind === 'UPLOAD') return 'image';
  if (w.kind === 'FILTER') return '';
  if (w.options.default !== undefined) return w.options.default;
  switch (w.kind) {
    case 'INT':
    case 'FLOAT':
      return typeof w.options.min === 'number' ? Math.max(0, w.options.min) : 0;
    case 'BOOLEAN':
      return false;
    case 'COMBO':
      return w.choices?.[0] ?? '';
    default:
      return '';
  }
}
