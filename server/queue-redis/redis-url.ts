import fs from 'node:fs';

/** Where and how to reach Redis: `redis://[user[:password]@]host[:port][/db]`, `rediss://` for TLS. */
export interface RedisTarget {
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  tls: boolean;
  /** PEM file of the CA that signed the server's certificate (`?ca=FILE`; else the system's CAs and NODE_EXTRA_CA_CERTS). */
  caFile?: string;
  /** `?servername=` for the TLS certificate check when the host is an address. */
  servername?: string;
}

/**
 * Parses a queue URL. The password may come from `WEFT_REDIS_PASSWORD` instead (a URL's password
 * shows in `ps`); a password in the URL wins. Errors name the URL without its password.
 */
export function parseRedisUrl(url: string, env: NodeJS.ProcessEnv = process.env): RedisTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`--queue ${redactUrl(url)}: not a URL (expected redis://HOST:PORT[/DB] or rediss://…)`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:')
    throw new Error(`--queue ${redactUrl(url)}: expected a redis:// or rediss:// URL, got ${u.protocol}`);
  const port = u.port ? Number(u.port) : 6379;
  const dbText = u.pathname.replace(/^\//, '');
  const db = dbText ? Number(dbText) : 0;
  if (!Number.isInteger(db) || db < 0 || db > 65535) throw new Error(`--queue ${redactUrl(url)}: database '${dbText}' is not a number`);
  const password = u.password ? decodeURIComponent(u.password) : env.WEFT_REDIS_PASSWORD || undefined;
  const caFile = u.searchParams.get('ca') ?? undefined;
  if (caFile && !fs.existsSync(caFile)) throw new Error(`--queue ${redactUrl(url)}: CA file ${caFile} does not exist`);
  return {
    host: u.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1',
    port,
    db,
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password,
    tls: u.protocol === 'rediss:',
    caFile,
    servername: u.searchParams.get('servername') ?? undefined,
  };
}

/** The URL with its password replaced by `***`, for logs and errors. */
export function redactUrl(url: string): string {
  return url.replace(/^(rediss?:\/\/[^:@/]*:)[^@/]*@/, '$1***@');
}
