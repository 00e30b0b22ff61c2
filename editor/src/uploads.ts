/**
 * Images into the server's input folder, as ComfyUI's frontend sends them: `/upload/image` with the
 * form fields `image`, `type`, `subfolder` and `overwrite`, and `/upload/mask` with `original_ref`.
 */
import type { ImageRef } from './api.ts';

export interface UploadedImage {
  name: string;
  subfolder: string;
  type: string;
}

const ANNOTATION = /^(.*) \[(input|output|temp)\]$/;

/** A LoadImage value (`name.png`, `sub/name.png [input]`) as the reference `/view` and `original_ref` take. */
export function imageRefOf(value: string): ImageRef {
  const m = ANNOTATION.exec(value);
  const path = m ? m[1] : value;
  const slash = path.lastIndexOf('/');
  return { filename: path.slice(slash + 1), subfolder: slash >= 0 ? path.slice(0, slash) : '', type: m ? m[2] : 'input' };
}

/** The widget value ComfyUI's frontend writes for an uploaded file: the bare name at the top of input/, else annotated. */
export function widgetValueOf(u: UploadedImage): string {
  const path = u.subfolder ? `${u.subfolder}/${u.name}` : u.name;
  return u.subfolder || u.type !== 'input' ? `${path} [${u.type}]` : path;
}

export function viewUrlOf(value: string): string {
  const r = imageRefOf(value);
  const q = new URLSearchParams({ filename: r.filename, subfolder: r.subfolder ?? '', type: r.type ?? 'input' });
  return `/api/view?${q}`;
}

async function post(path: string, form: FormData): Promise<UploadedImage> {
  const r = await fetch(`/api${path}`, { method: 'POST', body: form });
  const text = await r.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  if (!r.ok) {
    const msg = (body as { error?: unknown } | undefined)?.error;
    throw new Error(`upload failed (${r.status})${typeof msg === 'string' ? `: ${msg}` : ''}`);
  }
  return body as UploadedImage;
}

export function isImageFile(f: File | Blob): boolean {
  return f.type.startsWith('image/');
}

/** A pasted image has no useful name (Chromium calls every one `image.png`); it gets a dated one. */
export function uploadName(f: File): string {
  if (f.name && f.name !== 'image.png') return f.name;
  const ext = f.type === 'image/jpeg' ? 'jpg' : f.type === 'image/webp' ? 'webp' : 'png';
  return `pasted-${new Date().toISOString().replace(/[:.]/g, '-')}.${ext}`;
}

export function uploadImage(file: File, opts: { subfolder?: string; overwrite?: boolean } = {}): Promise<UploadedImage> {
  const form = new FormData();
  form.append('image', file, uploadName(file));
  form.append('type', 'input');
  form.append('subfolder', opts.subfolder ?? '');
  if (opts.overwrite) form.append('overwrite', 'true');
  return post('/upload/image', form);
}

/**
 * The mask editor's save: a PNG whose alpha is the new alpha of `original` (0 where painted), stored
 * as ComfyUI's editor stores it, in input/clipspace, merged by the server into the original's RGB.
 */
export function uploadMask(mask: Blob, original: ImageRef, name: string): Promise<UploadedImage> {
  const form = new FormData();
  form.append('image', mask, name);
  form.append(
    'original_ref',
    JSON.stringify({ filename: original.filename, subfolder: original.subfolder ?? '', type: original.type ?? 'input' }),
  );
  form.append('type', 'input');
  form.append('subfolder', 'clipspace');
  return post('/upload/mask', form);
}

/** Listeners told that object_info's file lists are stale (an upload added a file). */
const staleListeners = new Set<() => void>();

export function onFilesChanged(fn: () => void): () => void {
  staleListeners.add(fn);
  return () => staleListeners.delete(fn);
}

export function filesChanged(): void {
  for (const fn of staleListeners) fn();
}
