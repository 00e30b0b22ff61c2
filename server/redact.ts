import path from 'node:path';
import type { FolderPaths } from '../engine/paths/folders.ts';

/** The repository (sources in tracebacks) is named too. */
const REPO_ROOT = path.resolve(import.meta.dirname, '..');

export interface Redactor {
  text(s: string): string;
  /** A copy of a JSON value with every string redacted (the value must already be bounded in depth). */
  value<T>(v: T): T;
}

/**
 * Replaces the server's absolute folders in messages sent to clients by their role (`<models>`,
 * `<input>`, …): a client needs the name it asked for, not where the server keeps it.
 */
export function redactor(paths: FolderPaths): Redactor {
  const roots: [string, string][] = [
    [paths.modelsDir, '<models>'],
    [paths.inputDir, '<input>'],
    [paths.outputDir, '<output>'],
    [paths.tempDir, '<temp>'],
    [paths.userDir, '<user>'],
    [REPO_ROOT, '<weft>'],
    [paths.baseDir, '<base>'],
  ];
  for (const f of paths.folderNames()) for (const p of paths.searchPaths(f)) roots.push([p, `<${f}>`]);
  roots.sort((a, b) => b[0].length - a[0].length);
  const text = (s: string): string => {
    let out = s;
    for (const [root, name] of roots) if (root.length > 1 && out.includes(root)) out = out.split(root).join(name);
    return out;
  };
  const value = <T>(v: T): T => {
    if (typeof v === 'string') return text(v) as T;
    if (Array.isArray(v)) return v.map((x: unknown) => value(x)) as T;
    if (typeof v === 'object' && v !== null && !ArrayBuffer.isView(v)) {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[k] = value(x);
      return out as T;
    }
    return v;
  };
  return { text, value };
}

/** A client's mistake that reached the file system or a decoder, as a status and a message without paths. */
export function errorStatus(err: unknown): { status: number; message: string } | undefined {
  if (err instanceof URIError) return { status: 400, message: 'malformed percent-encoding in the request' };
  const e = err as { code?: unknown; status?: unknown };
  switch (e?.code) {
    case 'ENAMETOOLONG':
      return { status: 400, message: 'name too long' };
    case 'ENOENT':
      return { status: 404, message: 'not found' };
    case 'EISDIR':
    case 'ENOTDIR':
    case 'EINVAL':
    case 'ELOOP':
      return { status: 400, message: 'not a file name the server can use' };
    case 'EEXIST':
      return { status: 409, message: 'already exists' };
  }
  if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500) return { status: e.status, message: 'bad request' };
  return undefined;
}
