import { join } from 'node:path';
import { BuildCache, type CacheEntry } from '../engine/onnx/build-cache.ts';
import { parseByteSize, parseDuration, resolveCacheDir } from '../engine/onnx/cache-dir.ts';
import { KEPT_FOLDER, KeptExpansions, resolveKeptBudget, type KeptCopy } from '../engine/onnx/kept-expansions.ts';
import { UsageError } from './args.ts';

/**
 * `weft cache list|prune|dir`: the built-model cache as a user sees it. Each entry is one part of
 * one checkpoint (UNet, text encoder, VAE half) built for one precision and provider.
 */

export interface CacheCommandOptions {
  cacheDir?: string;
  all?: boolean;
  olderThan?: string;
  maxSize?: string;
  missingSource?: boolean;
  json?: boolean;
  /** Where lines go (tests collect them). */
  print?: (line: string) => void;
  now?: number;
}

export const CACHE_HELP = `  weft cache list [--json]                       the model cache: each build's size, last use, part and checkpoint,
                                                   and the float32 copies kept for fast loads ($WEFT_KEEP_EXPANDED)
  weft cache prune [--all] [--older-than 30d] [--max-size 20G] [--missing-source]
                                                   remove builds (least recently used first for --max-size); --all
                                                   also removes the float32 copies, and a build's copy goes with it
  weft cache dir                                   print the cache folder`;

export function cmdCache(sub: string | undefined, o: CacheCommandOptions): number {
  const print = o.print ?? ((l: string) => console.log(l));
  const cache = new BuildCache(resolveCacheDir(o.cacheDir));
  // Their own budget decides what is kept; listing and pruning see them all.
  const kept = new KeptExpansions(join(cache.root, KEPT_FOLDER), Infinity);
  const now = o.now ?? Date.now();
  switch (sub) {
    case 'dir':
      print(cache.root);
      return 0;
    case 'list': {
      const entries = cache.list();
      const copies = kept.list();
      if (o.json) {
        print(JSON.stringify({ dir: cache.root, bytes: BuildCache.held(entries), entries, kept: copies }));
        return 0;
      }
      print(`${cache.root}: ${entries.length} build${entries.length === 1 ? '' : 's'}, ${size(BuildCache.held(entries))} on disk`);
      if (entries.length) print(table(entries, now));
      if (copies.length) {
        const held = copies.reduce((s, c) => s + c.bytes, 0);
        print(`float32 copies kept for fast loads: ${copies.length}, ${size(held)} (budget ${budgetText()}, $WEFT_KEEP_EXPANDED)`);
        print(keptTable(copies, now));
      }
      return 0;
    }
    case 'prune': {
      const sel = {
        all: o.all,
        olderThanMs: o.olderThan === undefined ? undefined : parse(() => parseDuration(o.olderThan!), '--older-than'),
        maxBytes: o.maxSize === undefined ? undefined : parse(() => parseByteSize(o.maxSize!), '--max-size'),
        missingSource: o.missingSource,
      };
      if (!sel.all && sel.olderThanMs === undefined && sel.maxBytes === undefined && !sel.missingSource) {
        throw new UsageError('weft cache prune: say what to remove: --all, --older-than DURATION, --max-size SIZE or --missing-source');
      }
      const copies = kept.list();
      const removed = cache.prune(sel, now);
      for (const e of removed) print(`removed ${e.key} (${e.part}, ${size(e.bytes)}${e.source ? `, from ${e.source}` : ''})`);
      // --all took the copies' folder with it; otherwise the copies of removed builds go now.
      const gone = sel.all ? copies : kept.prune();
      for (const c of gone) print(`removed the float32 copy ${c.key} (${size(c.bytes)})`);
      print(`${removed.length} removed; ${size(BuildCache.held(cache.list()))} left in ${cache.root}`);
      return 0;
    }
    default:
      throw new UsageError(`weft cache: expected list, prune or dir, got ${sub ?? 'nothing'}`);
  }
}

function budgetText(): string {
  try {
    const b = resolveKeptBudget();
    return b > 0 ? size(b) : 'none: switched off';
  } catch (e) {
    return (e as Error).message;
  }
}

function keptTable(copies: readonly KeptCopy[], now: number): string {
  const rows = copies.map((c) => [
    'float32 copy',
    size(c.bytes),
    ago(now - c.lastUsed),
    c.orphan ? '(its build is gone or changed)' : (c.build ?? '?'),
    c.key,
  ]);
  const head = ['KIND', 'SIZE', 'LAST USED', 'BUILD', 'KEY'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  return [head, ...rows].map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n');
}

function parse(f: () => number, flag: string): number {
  try {
    return f();
  } catch (e) {
    throw new UsageError(`${flag}: ${(e as Error).message}`);
  }
}

function size(b: number): string {
  if (b >= 2 ** 30) return `${(b / 2 ** 30).toFixed(2)} GiB`;
  if (b >= 2 ** 20) return `${(b / 2 ** 20).toFixed(1)} MiB`;
  return `${(b / 2 ** 10).toFixed(0)} KiB`;
}

function ago(ms: number): string {
  const s = Math.max(0, ms / 1000);
  if (s < 90) return `${s.toFixed(0)} s ago`;
  if (s < 5400) return `${(s / 60).toFixed(0)} min ago`;
  if (s < 172800) return `${(s / 3600).toFixed(0)} h ago`;
  return `${(s / 86400).toFixed(0)} days ago`;
}

/** Least recently used first, as pruning by size removes them. */
function table(entries: readonly CacheEntry[], now: number): string {
  const rows = entries.map((e) => [
    e.part,
    size(e.bytes) + (e.linkedBytes ? ` (+${size(e.linkedBytes)} linked${e.sourceExists === false ? ', held' : ''})` : ''),
    ago(now - e.lastUsed),
    e.source === undefined ? '?' : `${e.source}${e.sourceExists === false ? ' (gone)' : ''}`,
    e.key,
  ]);
  const head = ['PART', 'SIZE', 'LAST USED', 'CHECKPOINT', 'KEY'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  return [head, ...rows].map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n');
}
