import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import type { IncomingHttpHeaders } from 'node:http';

/**
 * Who may talk to the server: the Host a request names must be one the server listens as (or one
 * given with `--allowed-hosts`), which refuses DNS rebinding (a foreign name resolving to this
 * machine), and a browser's Origin must be that same host. Plus the optional auth token.
 */
export interface AccessPolicy {
  /** Lower-case host names (IPv6 in brackets) accepted in `Host`; null accepts any. */
  hosts: ReadonlySet<string> | null;
  authToken?: string;
}

const LOOPBACK = ['localhost', '127.0.0.1', '[::1]'];

/** Names a client may use to reach a server listening on `listen`, plus `extra` (`*` = any). */
export function allowedHosts(listen: string, extra: readonly string[] = []): Set<string> | null {
  if (extra.includes('*')) return null;
  const out = new Set<string>(LOOPBACK);
  for (const h of extra) if (h.trim()) out.add(normaliseHostname(h.trim()));
  const wildcard = listen === '0.0.0.0' || listen === '::' || listen === '';
  if (wildcard) {
    out.add(os.hostname().toLowerCase());
    for (const addrs of Object.values(os.networkInterfaces())) {
      for (const a of addrs ?? []) {
        if (a.family === 'IPv6' && listen !== '::') continue;
        out.add(a.family === 'IPv6' ? `[${a.address.replace(/%.*$/, '').toLowerCase()}]` : a.address);
      }
    }
  } else {
    out.add(normaliseHostname(listen));
  }
  return out;
}

function normaliseHostname(h: string): string {
  const bare = h.replace(/^\[|\]$/g, '').toLowerCase();
  return bare.includes(':') ? `[${bare}]` : bare;
}

/** The host name of a `Host` header or URL authority (`[v6]` normalised as URL does), or undefined. */
export function hostnameOf(authority: string): string | undefined {
  try {
    const u = new URL(`http://${authority}`);
    if (u.username || u.password || u.pathname !== '/' || u.search) return undefined;
    return u.hostname.toLowerCase();
  } catch {
    return undefined;
  }
}

/** Why a request is refused (403), or undefined when host and origin are acceptable. */
export function refuseHostOrigin(
  headers: IncomingHttpHeaders,
  hosts: ReadonlySet<string> | null,
  checkOrigin: boolean,
): string | undefined {
  const host = headers.host ?? '';
  if (hosts) {
    const name = hostnameOf(host);
    if (!name || !hosts.has(name)) return 'host not allowed (start the server with --allowed-hosts to accept it)';
  }
  if (!checkOrigin) return undefined;
  if (headers['sec-fetch-site'] === 'cross-site') return 'cross-site request refused';
  const origin = headers.origin;
  if (origin === undefined) return undefined;
  let o: URL;
  try {
    o = new URL(origin);
  } catch {
    return 'bad origin';
  }
  if (o.host.toLowerCase() === host.toLowerCase()) return undefined;
  return 'origin does not match host';
}

/** The token a request presents: `Authorization: Bearer` (any case), `?token=`, or the editor's cookie. */
export function presentedToken(headers: IncomingHttpHeaders, query: URLSearchParams): string | undefined {
  const m = /^bearer\s+(\S+)\s*$/i.exec(headers.authorization ?? '');
  if (m) return m[1];
  const q = query.get('token');
  if (q) return q;
  return cookie(headers.cookie, TOKEN_COOKIE);
}

export const TOKEN_COOKIE = 'weft_token';

function cookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) {
      try {
        return decodeURIComponent(part.slice(i + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

/** Constant-time comparison (over digests, so the length of the token does not leak either). */
export function tokenMatches(presented: string | undefined, expected: string): boolean {
  if (presented === undefined) return false;
  const a = crypto.createHash('sha256').update(presented).digest();
  const b = crypto.createHash('sha256').update(expected).digest();
  return crypto.timingSafeEqual(a, b);
}

/** A cookie that lets the editor's own requests (fetch and WebSocket) carry the token. */
export function tokenCookie(token: string): string {
  return `${TOKEN_COOKIE}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/`;
}

/** argv with the value of `--auth-token` hidden (for /system_stats). */
export function redactArgv(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--auth-token') {
      out.push(a);
      if (i + 1 < argv.length) out.push('***');
      i++;
    } else if (a.startsWith('--auth-token=')) out.push('--auth-token=***');
    else out.push(a);
  }
  return out;
}

/** File types a browser would run as script or render as a document: served as downloads. */
const ACTIVE = new Set(['.html', '.htm', '.xhtml', '.xht', '.svg', '.svgz', '.xml', '.xsl', '.js', '.mjs', '.css', '.pdf', '.shtml']);

export function isActiveType(file: string): boolean {
  return ACTIVE.has(path.extname(file).toLowerCase());
}

/** The CSP sent with every stored file: nothing in it may run or load anything. */
export const FILE_CSP = "default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'; sandbox";

/**
 * A Content-Disposition header valid for any name: an ASCII fallback in `filename` and the exact
 * name in RFC 5987 `filename*` (Node refuses headers with characters above U+00FF or newlines).
 */
export function contentDisposition(kind: 'inline' | 'attachment', name: string): string {
  const fallback = name.replace(/[^\x20-\x7e]|["\\%]/g, '_');
  let encoded: string;
  try {
    encoded = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  } catch {
    return `${kind}; filename="${fallback}"`; // a lone surrogate has no UTF-8 form
  }
  return `${kind}; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}
