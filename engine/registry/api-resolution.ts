import module from 'node:module';
import { pathToFileURL } from 'node:url';
import path from 'node:path';

/** The public API custom node packages import as `weft/api` (package.json exports "./api"). */
const API_FILE = path.resolve(import.meta.dirname, '../api.ts');

/**
 * A package.json self-reference resolves `weft/api` only for files inside this repository, so a
 * package in a `--custom-nodes` folder elsewhere could not import it. A module resolve hook maps
 * the name for every importer, to the same URL the repository uses (one module instance).
 * Registered once per thread (the execution worker loads custom nodes too).
 */
const HOOK = `
let api;
export function initialize(data) { api = data.api; }
export async function resolve(specifier, context, next) {
  if (specifier === 'weft/api' || specifier === 'weft/api.ts') return next(api, context);
  return next(specifier, context);
}`;

let registered = false;

export function ensureApiResolvable(): void {
  if (registered) return;
  registered = true;
  const register = (module as { register?: (spec: string, opts: { data: unknown }) => void }).register;
  // Older Node without module.register: packages inside the repository still resolve it.
  register?.(`data:text/javascript,${encodeURIComponent(HOOK)}`, { data: { api: pathToFileURL(API_FILE).href } });
}
