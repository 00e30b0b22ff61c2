import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';

/**
 * Where built models live: one folder per user, shared by the CLI, the server and the benchmarks,
 * whatever the current folder. `--cache-dir` wins, then `$WEFT_CACHE_DIR`, then the XDG cache folder
 * (`$XDG_CACHE_HOME/weft`, `~/.cache/weft`).
 */
export function resolveCacheDir(flag?: string, env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  if (flag) return resolve(flag);
  if (env.WEFT_CACHE_DIR) return resolve(env.WEFT_CACHE_DIR);
  // The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
  const xdg = env.XDG_CACHE_HOME;
  return join(xdg && isAbsolute(xdg) ? xdg : join(home, '.cache'), 'weft');
}

/** The cache's size limit in bytes: `--cache-limit`, else `$WEFT_CACHE_LIMIT`, else none. */
export function resolveCacheLimit(flag?: string, env: NodeJS.ProcessEnv = process.env): number | undefined {
  const s = flag ?? env.WEFT_CACHE_LIMIT;
  return s === undefined || s === '' ? undefined : parseByteSize(s);
}

const UNITS: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/** `20G`, `500MiB`, `1.5GB`, `123456`: binary units (a G is 2^30 bytes, as `du -h` counts). */
export function parseByteSize(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(s);
  if (!m) throw new Error(`'${s}' is not a size (expected e.g. 20G, 500M, 1.5GiB or a number of bytes)`);
  return Math.floor(Number(m[1]) * UNITS[m[2].toLowerCase()]);
}

/** `30d`, `12h`, `45m`, `90s`: a duration in milliseconds. */
export function parseDuration(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$/i.exec(s);
  if (!m) throw new Error(`'${s}' is not a duration (expected e.g. 30d, 12h, 45m)`);
  const unit = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[m[2].toLowerCase() as 's' | 'm' | 'h' | 'd' | 'w'];
  return Number(m[1]) * unit * 1000;
}
