import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import { Readable } from 'node:stream';
import tls from 'node:tls';
import { ConnectionClosedError } from 'bullmq';
import { encodeCommand, RespDecoder, RespError, type RespArg, type RespValue } from './resp.ts';
import type { RedisTarget } from './redis-url.ts';

export interface RedisClientOptions extends RedisTarget {
  connectionName?: string;
  /** Delay before the n-th reconnection attempt (default: 100 ms · n, at most 2 s). */
  retryDelayMs?: (attempt: number) => number;
}

interface Pending {
  resolve: (v: RespValue) => void;
  reject: (e: Error) => void;
}

interface Script {
  lua: string;
  sha: string;
  keys: number;
}

/**
 * A small Redis client with the interface BullMQ 6 drives its queues through (`IRedisClient`), so
 * the scale-out mode needs no driver package: RESP2 over TCP or TLS, AUTH and SELECT from the URL,
 * Lua scripts by EVALSHA (EVAL on NOSCRIPT, e.g. after a Redis restart), pipelines and MULTI,
 * publish/subscribe. It reconnects forever with a bounded backoff, as BullMQ wants
 * (`maxRetriesPerRequest: null`): commands given while disconnected wait for the connection;
 * commands in flight when it drops are rejected with BullMQ's ConnectionClosedError (BullMQ retries
 * them; Lua scripts are atomic, so one either ran or did not).
 */
export class RedisClient extends EventEmitter {
  status: 'connecting' | 'connect' | 'ready' | 'reconnecting' | 'end' = 'connecting';
  readonly isCluster = false;
  /** BullMQ reads keyPrefix (must be unset) and maxRetriesPerRequest (must be null) from here. */
  readonly options: Record<string, unknown>;
  private socket: net.Socket | null = null;
  private readonly decoder = new RespDecoder();
  private inflight: Pending[] = [];
  private offline: { args: RespArg[]; p: Pending }[] = [];
  private attempts = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private readonly scripts = new Map<string, Script>();
  /** Scripts this connection has sent in full since it (re)connected (Redis may have restarted). */
  private loaded = new Set<string>();
  private readonly channels = new Set<string>();

  constructor(private readonly target: RedisClientOptions) {
    super();
    this.options = {
      host: target.host,
      port: target.port,
      db: target.db,
      maxRetriesPerRequest: null,
      connectionName: target.connectionName,
    };
    this.open();
  }

  private open(): void {
    const t = this.target;
    const onConnect = (): void => void this.handshake(sock);
    const sock: net.Socket = t.tls
      ? tls.connect(
          {
            host: t.host,
            port: t.port,
            servername: t.servername ?? (net.isIP(t.host) ? undefined : t.host),
            ...(t.caFile ? { ca: fs.readFileSync(t.caFile) } : {}),
          },
          onConnect,
        )
      : net.connect({ host: t.host, port: t.port }, onConnect);
    sock.setNoDelay(true);
    sock.setKeepAlive(true, 10_000);
    this.socket = sock;
    this.decoder.reset();
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('error', (e: Error) => {
      if (this.listenerCount('error')) this.emit('error', e);
    });
    sock.on('close', () => this.onClose(sock));
  }

  private async handshake(sock: net.Socket): Promise<void> {
    if (this.socket !== sock) return;
    this.status = 'connect';
    this.loaded = new Set();
    try {
      const t = this.target;
      if (t.password) await this.direct(t.username ? ['AUTH', t.username, t.password] : ['AUTH', t.password]);
      // A Redis that just restarted answers LOADING until it has read its append-only file.
      for (;;) {
        const pong = await this.direct(['PING']).catch((e: Error) => e);
        if (!(pong instanceof RespError && pong.message.startsWith('LOADING'))) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      if (t.db) await this.direct(['SELECT', t.db]);
      if (t.connectionName) await this.direct(['CLIENT', 'SETNAME', t.connectionName]);
      if (this.channels.size) this.write(['SUBSCRIBE', ...this.channels]);
    } catch (e) {
      // A wrong password or database is not transient: report it and stop.
      const err = new Error(`Redis refused the connection: ${(e as Error).message}`);
      if (this.listenerCount('error')) this.emit('error', err);
      this.end(err);
      return;
    }
    this.attempts = 0;
    this.status = 'ready';
    this.emit('ready');
    const queued = this.offline;
    this.offline = [];
    for (const q of queued) {
      this.inflight.push(q.p);
      this.write(q.args);
    }
  }

  private onData(chunk: Buffer): void {
    let replies: RespValue[];
    try {
      replies = this.decoder.push(chunk);
    } catch (e) {
      this.socket?.destroy(e as Error);
      return;
    }
    for (const r of replies) {
      if (this.channels.size && Array.isArray(r) && (r[0] === 'message' || r[0] === 'subscribe' || r[0] === 'unsubscribe')) {
        if (r[0] === 'message') this.emit('message', String(r[1]), String(r[2]));
        continue;
      }
      const p = this.inflight.shift();
      if (!p) continue;
      if (r instanceof RespError) p.reject(r);
      else p.resolve(r);
    }
  }

  private onClose(sock: net.Socket): void {
    if (this.socket !== sock) return;
    this.socket = null;
    const lost = this.inflight;
    this.inflight = [];
    for (const p of lost) p.reject(new ConnectionClosedError());
    this.emit('close');
    if (this.status === 'end') return;
    this.status = 'reconnecting';
    this.attempts++;
    const delay = this.target.retryDelayMs?.(this.attempts) ?? Math.min(100 * this.attempts, 2000);
    this.emit('reconnecting', delay);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.status === 'reconnecting') {
        this.status = 'connecting';
        this.open();
      }
    }, delay);
  }

  private write(args: readonly RespArg[]): void {
    this.socket?.write(encodeCommand(args));
  }

  /** Sends on the current socket, ahead of the offline queue (the connection handshake). */
  private direct(args: RespArg[]): Promise<RespValue> {
    return new Promise((resolve, reject) => {
      this.inflight.push({ resolve, reject });
      this.write(args);
    });
  }

  /** Any command; waits for the connection when there is none. */
  send(args: RespArg[]): Promise<RespValue> {
    if (this.status === 'end') return Promise.reject(new ConnectionClosedError());
    return new Promise((resolve, reject) => {
      if (this.status === 'ready') {
        this.inflight.push({ resolve, reject });
        this.write(args);
      } else this.offline.push({ args, p: { resolve, reject } });
    });
  }

  // --- connection lifecycle (IRedisClient) ---

  connect(): Promise<void> {
    if (this.status === 'ready') return Promise.resolve();
    if (this.status === 'end') {
      this.status = 'connecting';
      this.open();
    }
    return new Promise((resolve, reject) => {
      const ok = (): void => {
        this.off('end', fail);
        resolve();
      };
      const fail = (): void => {
        this.off('ready', ok);
        reject(new ConnectionClosedError());
      };
      this.once('ready', ok);
      this.once('end', fail);
    });
  }

  /** Closes now; with `reconnect`, opens a new connection (ioredis' semantics). */
  disconnect(reconnect = false): void {
    if (reconnect) {
      this.socket?.destroy();
      return;
    }
    this.end();
  }

  async quit(): Promise<string> {
    if (this.status === 'ready') await this.send(['QUIT']).catch(() => undefined);
    this.end();
    return 'OK';
  }

  private end(cause?: Error): void {
    if (this.status === 'end') return;
    this.status = 'end';
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const queued = this.offline;
    this.offline = [];
    for (const q of queued) q.p.reject(new ConnectionClosedError(undefined, cause));
    const sock = this.socket;
    if (sock) sock.once('close', () => this.emit('end'));
    else queueMicrotask(() => this.emit('end'));
    sock?.destroy();
  }

  duplicate(override?: { connectionName?: string }): RedisClient {
    return new RedisClient({ ...this.target, connectionName: override?.connectionName ?? this.target.connectionName });
  }

  // --- Lua scripts ---

  defineCommand(name: string, def: { numberOfKeys: number; lua: string }): void {
    this.scripts.set(name, { lua: def.lua, keys: def.numberOfKeys, sha: createHash('sha1').update(def.lua).digest('hex') });
  }

  private script(name: string): Script {
    const s = this.scripts.get(name);
    if (!s) throw new Error(`Redis script ${name} was never defined`);
    return s;
  }

  async runCommand(name: string, args: RespArg[]): Promise<RespValue> {
    const s = this.script(name);
    if (!this.loaded.has(s.sha)) {
      // EVAL also caches the script in Redis, so later calls can go by SHA.
      const r = await this.send(['EVAL', s.lua, s.keys, args]);
      this.loaded.add(s.sha);
      return r;
    }
    try {
      return await this.send(['EVALSHA', s.sha, s.keys, args]);
    } catch (e) {
      if (!(e instanceof RespError) || !e.message.startsWith('NOSCRIPT')) throw e;
      return this.send(['EVAL', s.lua, s.keys, args]);
    }
  }

  /** Makes sure Redis holds these scripts, so a batch can call them by SHA. */
  async loadScripts(names: Iterable<string>): Promise<void> {
    for (const n of new Set(names)) {
      const s = this.script(n);
      if (this.loaded.has(s.sha)) continue;
      await this.send(['SCRIPT', 'LOAD', s.lua]);
      this.loaded.add(s.sha);
    }
  }

  scriptSha(name: string): { sha: string; keys: number } {
    return this.script(name);
  }

  pipeline(): RedisBatch {
    return new RedisBatch(this, false);
  }

  multi(): RedisBatch {
    return new RedisBatch(this, true);
  }

  // --- commands BullMQ uses ---

  async hgetall(key: string): Promise<Record<string, string>> {
    return pairs((await this.send(['HGETALL', key])) as string[]);
  }
  hget(key: string, field: string): Promise<string | null> {
    return this.send(['HGET', key, field]) as Promise<string | null>;
  }
  hmget(key: string, ...fields: string[]): Promise<(string | null)[]> {
    return this.send(['HMGET', key, ...fields]) as Promise<(string | null)[]>;
  }
  hset(key: string, data: Record<string, string | number>): Promise<number> {
    return this.send(['HSET', key, ...Object.entries(data).flat()]) as Promise<number>;
  }
  hdel(key: string, ...fields: string[]): Promise<number> {
    return this.send(['HDEL', key, ...fields]) as Promise<number>;
  }
  hexists(key: string, field: string): Promise<number> {
    return this.send(['HEXISTS', key, field]) as Promise<number>;
  }
  get(key: string): Promise<string | null> {
    return this.send(['GET', key]) as Promise<string | null>;
  }
  set(key: string, value: string | number, options?: { PX?: number; EX?: number }): Promise<string | null> {
    const extra = options?.PX !== undefined ? ['PX', options.PX] : options?.EX !== undefined ? ['EX', options.EX] : [];
    return this.send(['SET', key, value, ...extra]) as Promise<string | null>;
  }
  del(...keys: string[]): Promise<number> {
    return this.send(['DEL', ...keys]) as Promise<number>;
  }
  zrange(key: string, start: number, end: number, options?: { WITHSCORES?: boolean }): Promise<string[]> {
    return this.send(['ZRANGE', key, start, end, ...(options?.WITHSCORES ? ['WITHSCORES'] : [])]) as Promise<string[]>;
  }
  zrevrange(key: string, start: number, end: number, options?: { WITHSCORES?: boolean }): Promise<string[]> {
    return this.send(['ZREVRANGE', key, start, end, ...(options?.WITHSCORES ? ['WITHSCORES'] : [])]) as Promise<string[]>;
  }
  zcard(key: string): Promise<number> {
    return this.send(['ZCARD', key]) as Promise<number>;
  }
  zscore(key: string, member: string): Promise<string | null> {
    return this.send(['ZSCORE', key, member]) as Promise<string | null>;
  }
  lrange(key: string, start: number, end: number): Promise<string[]> {
    return this.send(['LRANGE', key, start, end]) as Promise<string[]>;
  }
  llen(key: string): Promise<number> {
    return this.send(['LLEN', key]) as Promise<number>;
  }
  ltrim(key: string, start: number, end: number): Promise<string> {
    return this.send(['LTRIM', key, start, end]) as Promise<string>;
  }
  lpos(key: string, value: string): Promise<number | null> {
    return this.send(['LPOS', key, value]) as Promise<number | null>;
  }
  smembers(key: string): Promise<string[]> {
    return this.send(['SMEMBERS', key]) as Promise<string[]>;
  }
  xadd(
    key: string,
    id: string,
    fields: Record<string, string | number>,
    options?: { MAXLEN?: number; approximate?: boolean },
  ): Promise<string> {
    const trim = options?.MAXLEN !== undefined ? ['MAXLEN', ...(options.approximate !== false ? ['~'] : []), options.MAXLEN] : [];
    return this.send(['XADD', key, ...trim, id, ...Object.entries(fields).flat()]) as Promise<string>;
  }
  xread(streams: { key: string; id: string }[], options?: { BLOCK?: number; COUNT?: number }): Promise<RespValue> {
    const opts = [
      ...(options?.BLOCK !== undefined ? ['BLOCK', options.BLOCK] : []),
      ...(options?.COUNT !== undefined ? ['COUNT', options.COUNT] : []),
    ];
    return this.send(['XREAD', ...opts, 'STREAMS', ...streams.map((s) => s.key), ...streams.map((s) => s.id)]);
  }
  xtrim(key: string, strategy: 'MAXLEN', threshold: number, options?: { approximate?: boolean }): Promise<number> {
    return this.send(['XTRIM', key, strategy, ...(options?.approximate !== false ? ['~'] : []), threshold]) as Promise<number>;
  }
  bzpopmin(key: string, timeout: number): Promise<[string, string, string] | null> {
    return this.send(['BZPOPMIN', key, timeout]) as Promise<[string, string, string] | null>;
  }
  info(): Promise<string> {
    return this.send(['INFO']) as Promise<string>;
  }
  clientSetName(name: string): Promise<RespValue> {
    return this.send(['CLIENT', 'SETNAME', name]);
  }
  clientList(): Promise<string> {
    return this.send(['CLIENT', 'LIST']) as Promise<string>;
  }
  clientInfo(): Promise<string> {
    return this.send(['CLIENT', 'INFO']) as Promise<string>;
  }
  async scan(cursor: string | number, options: { MATCH?: string; COUNT?: number }): Promise<[string, string[]]> {
    const opts = [
      ...(options.MATCH !== undefined ? ['MATCH', options.MATCH] : []),
      ...(options.COUNT !== undefined ? ['COUNT', options.COUNT] : []),
    ];
    const [next, keys] = (await this.send(['SCAN', cursor, ...opts])) as [string, string[]];
    return [next, keys];
  }
  scanStream(options: { match: string; count?: number }): Readable {
    let cursor = '0';
    let started = false;
    const stream: Readable = new Readable({
      objectMode: true,
      read: () => {
        if (started && cursor === '0') return void stream.push(null);
        started = true;
        this.scan(cursor, { MATCH: options.match, COUNT: options.count }).then(
          ([next, keys]) => {
            cursor = next;
            stream.push(keys);
          },
          (e: Error) => stream.destroy(e),
        );
      },
    });
    return stream;
  }

  // --- publish/subscribe (previews and interrupts) ---

  publish(channel: string, message: string): Promise<number> {
    return this.send(['PUBLISH', channel, message]) as Promise<number>;
  }

  /** Puts this connection in subscriber mode: it then only receives 'message' (channel, text) events. */
  subscribe(...channels: string[]): void {
    for (const c of channels) this.channels.add(c);
    if (this.status === 'ready') this.write(['SUBSCRIBE', ...channels]);
  }
}

function pairs(flat: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]] = flat[i + 1];
  return out;
}

/** A pipeline (or a MULTI/EXEC transaction) of commands sent together. */
export class RedisBatch {
  private readonly cmds: { args: RespArg[]; script?: string }[] = [];

  constructor(
    private readonly client: RedisClient,
    private readonly atomic: boolean,
  ) {}

  private add(args: RespArg[], script?: string): this {
    this.cmds.push({ args, script });
    return this;
  }
  hgetall(key: string): this {
    return this.add(['HGETALL', key]);
  }
  hset(key: string, data: Record<string, string | number>): this {
    return this.add(['HSET', key, ...Object.entries(data).flat()]);
  }
  hscan(key: string, cursor: string | number, options?: { COUNT?: number }): this {
    return this.add(['HSCAN', key, cursor, ...(options?.COUNT !== undefined ? ['COUNT', options.COUNT] : [])]);
  }
  smembers(key: string): this {
    return this.add(['SMEMBERS', key]);
  }
  sscan(key: string, cursor: string | number, options?: { COUNT?: number }): this {
    return this.add(['SSCAN', key, cursor, ...(options?.COUNT !== undefined ? ['COUNT', options.COUNT] : [])]);
  }
  zrange(key: string, start: number, end: number): this {
    return this.add(['ZRANGE', key, start, end]);
  }
  lrange(key: string, start: number, end: number): this {
    return this.add(['LRANGE', key, start, end]);
  }
  llen(key: string): this {
    return this.add(['LLEN', key]);
  }
  del(...keys: string[]): this {
    return this.add(['DEL', ...keys]);
  }
  runCommand(name: string, args: RespArg[]): this {
    const s = this.client.scriptSha(name);
    return this.add(['EVALSHA', s.sha, s.keys, args], name);
  }

  async exec(): Promise<[Error | null, unknown][] | null> {
    const scripts = this.cmds.flatMap((c) => (c.script ? [c.script] : []));
    if (scripts.length) await this.client.loadScripts(scripts);
    const hgetall = this.cmds.map((c) => c.args[0] === 'HGETALL');
    const shape = (r: RespValue, i: number): [Error | null, unknown] =>
      r instanceof RespError ? [r, null] : [null, hgetall[i] ? pairs(r as string[]) : r];
    if (!this.atomic) {
      const settled = await Promise.allSettled(this.cmds.map((c) => this.client.send(c.args)));
      return settled.map((s, i) => (s.status === 'fulfilled' ? shape(s.value, i) : [s.reason as Error, null]));
    }
    const parts = [
      this.client.send(['MULTI']),
      ...this.cmds.map((c) => this.client.send(c.args).catch(() => null)),
      this.client.send(['EXEC']),
    ];
    const results = await Promise.all(parts);
    const exec = results[results.length - 1] as RespValue[] | null;
    return exec === null ? null : exec.map(shape);
  }
}
