import type { ImageTensor, Latent, MaskTensor } from '../core/tensor.ts';

/**
 * What value travels through a socket of each type. Engine modules that own a type add it by
 * declaration merging (`declare module '.../sockets.ts' { interface SocketValueTypes { MODEL: ... } }`),
 * so the registry never imports the model or sampling layers. A socket type nobody declared
 * (a custom package's own) carries `unknown`.
 */
export interface SocketValueTypes {
  INT: number;
  FLOAT: number;
  STRING: string;
  BOOLEAN: boolean;
  COMBO: string;
  IMAGE: ImageTensor;
  MASK: MaskTensor;
  LATENT: Latent;
}

export type SocketValue<T extends string> = T extends keyof SocketValueTypes ? SocketValueTypes[T] : unknown;

/** Types ComfyUI shows as widgets rather than sockets. */
export const WIDGET_TYPES = ['INT', 'FLOAT', 'STRING', 'BOOLEAN', 'COMBO'] as const;
export type WidgetType = (typeof WIDGET_TYPES)[number];

export function isWidgetType(t: string): t is WidgetType {
  return (WIDGET_TYPES as readonly string[]).includes(t);
}

/**
 * ComfyUI's socket compatibility: equal, either side `*`, or overlapping comma-separated unions.
 * A COMBO input accepts a linked STRING list or COMBO source.
 */
export function socketTypesMatch(received: string, wanted: string): boolean {
  if (received === wanted || received === '*' || wanted === '*') return true;
  if (wanted === 'COMBO' && (received === 'STRING' || received.startsWith('COMBO'))) return true;
  const r = received.split(',').map((s) => s.trim());
  const w = wanted.split(',').map((s) => s.trim());
  return r.some((x) => w.includes(x));
}
