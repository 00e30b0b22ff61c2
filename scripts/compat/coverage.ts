/** Which node classes a set of workflow files needs that a registry lacks (UI workflows expanded as the frontend expands them, or API prompts). */
import fs from 'node:fs';
import path from 'node:path';
import { expandWorkflow, hasNestedGraphs } from '../../engine/graph/convert-expand.ts';
import { VIRTUAL } from '../../engine/graph/convert-read.ts';
import type { ObjectInfo } from '../../engine/registry/registry.ts';

export interface FileClasses {
  file: string;
  kind: 'workflow' | 'prompt' | 'other';
  classes: string[];
}

/** The classes a JSON value would run: a UI workflow's active non-virtual nodes, or an API prompt's class_types. */
export function classesOf(json: unknown, info: ObjectInfo): Omit<FileClasses, 'file'> {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return { kind: 'other', classes: [] };
  const o = json as Record<string, unknown>;
  if (Array.isArray(o.nodes)) {
    const flat = hasNestedGraphs(o) ? expandWorkflow(o, info).workflow : o;
    const nodes = flat.nodes as { type?: unknown; mode?: unknown }[];
    const classes = nodes
      .filter((n) => typeof n.type === 'string' && n.mode !== 2 && n.mode !== 4 && !VIRTUAL.has(n.type))
      .map((n) => n.type as string);
    return { kind: 'workflow', classes: [...new Set(classes)].sort() };
  }
  const values = Object.values(o);
  if (
    values.length &&
    values.every((v) => typeof v === 'object' && v !== null && typeof (v as { class_type?: unknown }).class_type === 'string')
  ) {
    return { kind: 'prompt', classes: [...new Set(values.map((v) => (v as { class_type: string }).class_type))].sort() };
  }
  return { kind: 'other', classes: [] };
}

export function jsonFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return jsonFiles(p);
    return e.isFile() && e.name.endsWith('.json') ? [p] : [];
  });
}

export function coverage(
  files: string[],
  info: ObjectInfo,
): { perFile: (FileClasses & { missing: string[] })[]; missing: Map<string, string[]> } {
  const perFile = files.map((file) => {
    let json: unknown;
    try {
      json = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch {
      json = undefined;
    }
    const c = classesOf(json, info);
    return { file, ...c, missing: c.classes.filter((k) => !info[k]) };
  });
  const missing = new Map<string, string[]>();
  for (const f of perFile) for (const k of f.missing) missing.set(k, [...(missing.get(k) ?? []), f.file]);
  return { perFile, missing };
}
