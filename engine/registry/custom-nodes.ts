import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Logger } from '../core/log.ts';
import { ensureApiResolvable } from './api-resolution.ts';
import type { NodeRegistry } from './registry.ts';
import type { AnyNodeDefinition } from './types.ts';

export interface CustomPackageReport {
  name: string;
  path: string;
  status: 'loaded' | 'failed' | 'skipped';
  /** Class names registered from this package. */
  nodes: string[];
  /** Why the package failed or which of its nodes were refused. */
  errors: string[];
  /** Folder of editor extension files (served at /extensions/<name>/), if the package declares one. */
  webDirectory?: string;
  loadMs: number;
}

const ENTRY_FILES = ['index.ts', 'index.mts', 'index.js', 'index.mjs'];
const MODULE_EXTS = ['.ts', '.mts', '.js', '.mjs'];

/**
 * What a package may export (any one of):
 * - `nodes`: an array of node definitions (defineNode results);
 * - `NODE_CLASS_MAPPINGS`: `{ ClassName: definition }` as ComfyUI packages do, with optional
 *   `NODE_DISPLAY_NAME_MAPPINGS`;
 * - `default`: either of the above, or a function returning one (sync or async).
 * `WEB_DIRECTORY` / `webDirectory` names a folder of editor extensions.
 */
interface PackageModule {
  nodes?: unknown;
  NODE_CLASS_MAPPINGS?: unknown;
  NODE_DISPLAY_NAME_MAPPINGS?: unknown;
  WEB_DIRECTORY?: unknown;
  webDirectory?: unknown;
  default?: unknown;
}

/** Entries of one custom_nodes folder in listing order: folders with an index file, or single module files. */
export function listCustomPackages(dir: string): { name: string; entry: string; root: string }[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const out: { name: string; entry: string; root: string }[] = [];
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (e.name.startsWith('.') || e.name.startsWith('_') || e.name === 'node_modules') continue;
    if (e.name.endsWith('.disabled')) continue;
    const abs = path.join(dir, e.name);
    const isDir = e.isDirectory() || (e.isSymbolicLink() && safeIsDir(abs));
    if (isDir) {
      const entry = ENTRY_FILES.map((f) => path.join(abs, f)).find((f) => fs.existsSync(f));
      if (entry) out.push({ name: e.name, entry, root: abs });
    } else if (MODULE_EXTS.includes(path.extname(e.name)) && !e.name.endsWith('.d.ts') && !e.name.includes('.test.')) {
      out.push({ name: e.name.replace(/\.[^.]+$/, ''), entry: abs, root: dir });
    }
  }
  return out;
}

function safeIsDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

async function definitionsOf(mod: PackageModule): Promise<{ defs: unknown[]; displayNames: Record<string, string> }> {
  let src: unknown = mod;
  if (mod.nodes === undefined && mod.NODE_CLASS_MAPPINGS === undefined && mod.default !== undefined) {
    src = typeof mod.default === 'function' ? await (mod.default as () => unknown)() : mod.default;
  }
  if (Array.isArray(src)) return { defs: src, displayNames: {} };
  const m = (src ?? {}) as PackageModule;
  const displayNames =
    typeof m.NODE_DISPLAY_NAME_MAPPINGS === 'object' && m.NODE_DISPLAY_NAME_MAPPINGS !== null
      ? (m.NODE_DISPLAY_NAME_MAPPINGS as Record<string, string>)
      : {};
  if (Array.isArray(m.nodes)) return { defs: m.nodes, displayNames };
  if (typeof m.NODE_CLASS_MAPPINGS === 'object' && m.NODE_CLASS_MAPPINGS !== null) {
    const defs = Object.entries(m.NODE_CLASS_MAPPINGS as Record<string, unknown>).map(([name, def]) =>
      typeof def === 'object' && def !== null ? { ...(def as object), name } : def,
    );
    return { defs, displayNames };
  }
  throw new Error('exports no `nodes` array, NODE_CLASS_MAPPINGS or default export with node definitions');
}

/**
 * Load every package of the given custom_nodes folders into the registry. A package that throws while
 * loading, or declares a class name that already exists, is reported with the reason and skipped (a
 * duplicate only skips that node), while everything else loads — as ComfyUI does at start.
 */
export async function loadCustomNodes(registry: NodeRegistry, dirs: readonly string[], log?: Logger): Promise<CustomPackageReport[]> {
  const reports: CustomPackageReport[] = [];
  if (dirs.length) ensureApiResolvable();
  for (const dir of dirs) {
    for (const pkg of listCustomPackages(dir)) {
      const t0 = performance.now();
      const report: CustomPackageReport = { name: pkg.name, path: pkg.entry, status: 'loaded', nodes: [], errors: [], loadMs: 0 };
      try {
        const mod = (await import(pathToFileURL(pkg.entry).href)) as PackageModule;
        const { defs, displayNames } = await definitionsOf(mod);
        const web = mod.WEB_DIRECTORY ?? mod.webDirectory;
        if (typeof web === 'string') report.webDirectory = path.resolve(pkg.root, web);
        for (const raw of defs) {
          const def = raw as AnyNodeDefinition;
          try {
            const named = displayNames[def?.name] && !def.displayName ? { ...def, displayName: displayNames[def.name] } : def;
            registry.register(named, `custom_nodes.${pkg.name}`);
            report.nodes.push(def.name);
          } catch (e) {
            report.errors.push((e as Error).message);
          }
        }
        if (report.nodes.length === 0 && report.errors.length > 0) report.status = 'failed';
      } catch (e) {
        report.status = 'failed';
        report.errors.push((e as Error).message);
      }
      report.loadMs = performance.now() - t0;
      if (log) {
        if (report.status === 'failed') log.warn(`custom nodes: cannot load ${pkg.name} (${pkg.entry}): ${report.errors.join('; ')}`);
        else if (report.errors.length) log.warn(`custom nodes: ${pkg.name}: ${report.errors.join('; ')}`);
      }
      reports.push(report);
    }
  }
  if (log && reports.length) {
    log.info(
      'custom nodes: ' +
        reports.map((r) => `${r.name} ${r.loadMs.toFixed(0)} ms${r.status === 'failed' ? ' (IMPORT FAILED)' : ''}`).join(', '),
    );
  }
  return reports;
}
