import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import express, { type NextFunction, type Request, type Response } from 'express';
import sharp from 'sharp';
import { WebSocketServer, type WebSocket } from 'ws';
import { z } from 'zod';
import type { Executor } from '../engine/executor/executor.ts';
import type { ExecutionEvent } from '../engine/executor/events.ts';
import { encodeJpeg } from '../engine/image/io.ts';
import type { FolderPaths } from '../engine/paths/folders.ts';
import { SafetensorsFile } from '../engine/formats/safetensors.ts';
import { PathEscapeError, safeJoin } from '../engine/core/safe-path.ts';
import { silentLogger, type Logger } from '../engine/core/log.ts';
import type { CustomPackageReport } from '../engine/registry/custom-nodes.ts';
import type { NodeRegistry } from '../engine/registry/registry.ts';
import { deeperThan } from '../engine/executor/json-bounds.ts';
import { PromptFault } from '../engine/executor/guard.ts';
import { maxImagePixels } from '../engine/image/io.ts';
import { PersistentQueue, type HistoryEntry, type QueueItem } from './queue.ts';
import { errorStatus, redactor } from './redact.ts';
import {
  FILE_CSP,
  allowedHosts,
  contentDisposition,
  isActiveType,
  presentedToken,
  redactArgv,
  refuseHostOrigin,
  tokenCookie,
  tokenMatches,
} from './security.ts';
import { InProcessHost, failedResult, type ExecutionHost } from './execution-host.ts';
import { installFaultHandlers } from './faults.ts';
import { uploadRoutes } from './uploads.ts';
import { userdataRoutes } from './userdata.ts';
import { handleWorkflowMessage } from './workflows.ts';
import { checkPromptRequest } from './prompt-request.ts';
import { historyEntryOf } from './history-entry.ts';
import { LogBuffer, jobRoutes } from './jobs.ts';
import type { ScaleOutFront } from './queue-redis/front.ts';

export interface ServerOptions {
  port?: number;
  listen?: string;
  paths: FolderPaths;
  registry: NodeRegistry;
  /** Runs prompts on this event loop (tests, embedding); `executionHost` takes precedence. */
  executor?: Executor;
  /** Runs prompts elsewhere (`WorkerHost`), so the server answers while a node computes. */
  executionHost?: ExecutionHost;
  /** How long SIGTERM/close waits for the running prompt before abandoning it (default 5 s). */
  shutdownGraceMs?: number;
  stateDir?: string;
  authToken?: string;
  /** Host names accepted besides the ones the server listens as (`*` = any); see security.ts. */
  allowedHosts?: string[];
  enableCorsHeader?: string;
  /** Largest image (width × height) the server decodes for /view and /upload/mask (default 64 Mpx). */
  maxImagePixels?: number;
  /** A prompt running when the process died this many times is failed instead of replayed (default 2). */
  maxCrashes?: number;
  maxUploadSize?: number;
  log?: Logger;
  workflowTemplatesDir?: string;
  customNodes?: CustomPackageReport[];
  editorDir?: string;
  /** Scale-out mode (`--queue redis://…`): prompts go to Redis and `weft worker`s run them (docs/scale-out.md). */
  scaleOut?: ScaleOutFront;
}

export interface RunningServer {
  url: string;
  port: number;
  queue: PersistentQueue;
  close(): Promise<void>;
}

const VERSION = '0.1.0';
/** A slow client may hold this much unsent data before its messages are dropped. */
const MAX_CLIENT_BUFFER = 8 * 1024 * 1024;
const idsBody = z.object({ clear: z.boolean().optional(), delete: z.array(z.string()).optional() });
const wsMessage = z.object({ type: z.string().max(64), data: z.unknown().optional(), id: z.unknown().optional() });
const featureFlags = z.object({ supports_preview_metadata: z.boolean().optional() }).passthrough();

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function zodMessage(e: z.ZodError): string {
  return e.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ');
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const logs = new LogBuffer();
  const log = logs.capture(opts.log ?? silentLogger);
  const { paths, registry } = opts;
  if (!opts.executionHost && !opts.executor) throw new Error('startServer needs an executor or an execution host');
  const host: ExecutionHost = opts.executionHost ?? new InProcessHost(opts.executor!);
  const queue = new PersistentQueue(opts.stateDir ?? path.join(paths.userDir, 'weft-state'), { log, maxCrashes: opts.maxCrashes });
  const hosts = allowedHosts(opts.listen ?? '127.0.0.1', opts.allowedHosts);
  const maxPixels = opts.maxImagePixels ?? maxImagePixels();
  const redact = redactor(paths);
  const app = express();
  app.disable('x-powered-by');
  const clients = new Map<string, { ws: WebSocket; previewMetadata: boolean }>();
  let current: { id: string; clientId?: string; node?: string } | null = null;
  // A custom node's stray rejection or throwing timer (in this thread) fails the running prompt, not the process.
  const uninstallFaults = installFaultHandlers((error, kind) => {
    log.error(`${kind}${current ? ` while prompt ${current.id} ran (it is failed)` : ''}: ${error.stack ?? error.message}`);
    if (current) host.interrupt(new PromptFault(`${kind} while this prompt ran: ${error.message}`));
  });

  // Host always (DNS rebinding), then ComfyUI's origin policy or CORS headers when asked for.
  app.use((req: Request, res: Response, next: NextFunction) => {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    const refused = refuseHostOrigin(req.headers, hosts, !opts.enableCorsHeader);
    if (refused) return void res.status(403).send(refused);
    if (opts.enableCorsHeader) {
      res.setHeader('Access-Control-Allow-Origin', opts.enableCorsHeader);
      res.setHeader('Access-Control-Allow-Methods', 'POST, GET, DELETE, PUT, OPTIONS, PATCH');
      res.setHeader('Access-Control-Allow-Headers', 'Content-Type, Authorization');
      if (req.method === 'OPTIONS') return void res.sendStatus(200);
    }
    if (opts.authToken) {
      const query = new URL(req.originalUrl, 'http://x').searchParams;
      if (!tokenMatches(presentedToken(req.headers, query), opts.authToken))
        return void res.status(401).json({ error: 'missing or wrong auth token' });
      // Opening the editor as /?token=… leaves a cookie, so the editor's own requests carry the token.
      if (query.has('token')) res.setHeader('Set-Cookie', tokenCookie(opts.authToken));
    }
    next();
  });
  // Strip the /api prefix so every route is served at both paths, as ComfyUI does.
  app.use((req, _res, next) => {
    if (req.url === '/api' || req.url.startsWith('/api/')) req.url = req.url.slice(4) || '/';
    next();
  });
  // aiohttp's request.json() ignores the content type, and clients rely on it (some send text/plain).
  app.use(
    express.json({
      limit: '64mb',
      type: (req) => !String(req.headers['content-type'] ?? '').startsWith('multipart/') && !(req.url ?? '').startsWith('/userdata/'),
    }),
  );

  const remaining = (): number => opts.scaleOut?.remaining ?? queue.remaining;
  const broadcastStatus = (): void => {
    const msg = JSON.stringify({ type: 'status', data: { status: { exec_info: { queue_remaining: remaining() } } } });
    for (const c of clients.values()) send(c.ws, msg);
  };
  const send = (ws: WebSocket, data: string | Buffer): void => {
    if (ws.readyState !== ws.OPEN) return;
    if (ws.bufferedAmount > MAX_CLIENT_BUFFER) {
      log.warn('websocket client is not reading; dropping a message for it');
      return;
    }
    ws.send(data);
  };
  const toClient = (clientId: string | undefined, msg: { type: string; data: unknown }): void => {
    const c = clientId ? clients.get(clientId) : undefined;
    if (c) send(c.ws, JSON.stringify(msg));
  };

  // Scale-out: the front's routes (queue, history, interrupt, /internal/upload) come first and replace the embedded queue's.
  opts.scaleOut?.attach(app, {
    toClient,
    broadcast: (msg) => clients.forEach((c) => send(c.ws, JSON.stringify(msg))),
    broadcastStatus,
    sendPreview: (clientId, jpeg, node, promptId) => {
      const c = clientId ? clients.get(clientId) : undefined;
      if (c) sendJpeg(c, jpeg, node, promptId);
    },
    checkPrompt: (body, has) => checkPromptRequest(body, { registry, paths, redact, has }),
    paths,
    authRequired: !!opts.authToken,
  });
  app.get('/prompt', (_req, res) => void res.json({ exec_info: { queue_remaining: queue.remaining } }));
  app.post('/prompt', async (req, res) => {
    const checked = await checkPromptRequest(req.body, { registry, paths, redact, has: (id) => queue.has(id) });
    if (!checked.ok) return void res.status(checked.status).json(checked.body);
    const b = checked.body;
    const id = b.prompt_id ?? randomUUID();
    const number = b.number ?? queue.nextNumber(b.front === true);
    const extra = { ...(b.extra_data ?? {}), ...(b.client_id ? { client_id: b.client_id } : {}), create_time: Date.now() };
    queue.put([number, id, checked.prompt, extra, checked.outputs]);
    broadcastStatus();
    wake();
    res.json({ prompt_id: id, number, node_errors: checked.nodeErrors });
  });

  app.get('/queue', (_req, res) => {
    res.json({ queue_running: queue.runningItem ? [queue.runningItem] : [], queue_pending: queue.pendingItems });
  });
  app.post('/queue', (req, res) => {
    const b = idsBody.safeParse(req.body ?? {});
    if (!b.success) return void res.status(400).json({ error: zodMessage(b.error) });
    if (b.data.clear) queue.clear();
    if (b.data.delete) queue.delete(b.data.delete);
    broadcastStatus();
    // ComfyUI answers these POSTs with an empty body (web.Response()); clients parse a body as JSON.
    res.status(200).end();
  });
  app.post('/interrupt', (req, res) => {
    const id = (req.body as { prompt_id?: unknown } | undefined)?.prompt_id;
    if (current && (typeof id !== 'string' || id === current.id)) host.interrupt();
    res.status(200).end();
  });
  app.post('/free', (_req, res) => {
    host.clearCache();
    res.status(200).end();
  });
  app.get('/history', (req, res) => {
    const entries = [...queue.history.entries()];
    const max = req.query.max_items !== undefined ? Number(req.query.max_items) : undefined;
    const offset = Number(req.query.offset ?? 0) || 0;
    let list = entries;
    if (max !== undefined && Number.isFinite(max))
      list = entries.slice(Math.max(0, entries.length - max - offset), entries.length - offset);
    res.json(Object.fromEntries(list));
  });
  app.get('/history/:id', (req, res) => {
    const e = queue.history.get(req.params.id);
    res.json(e ? { [req.params.id]: e } : {});
  });
  app.post('/history', (req, res) => {
    const b = idsBody.safeParse(req.body ?? {});
    if (!b.success) return void res.status(400).json({ error: zodMessage(b.error) });
    if (b.data.clear) queue.clearHistory();
    if (b.data.delete) queue.deleteHistory(b.data.delete);
    res.status(200).end();
  });

  const stopLogStream = jobRoutes(app, { jobs: queue, logs, toClient });
  app.get('/object_info', (_req, res) => void res.json(registry.objectInfo({ paths })));
  app.get('/object_info/:cls', (req, res) => {
    const info = registry.has(req.params.cls) ? registry.objectInfo({ paths })[req.params.cls] : undefined;
    res.json(info ? { [req.params.cls]: info } : {});
  });
  app.get('/embeddings', (_req, res) => void res.json(paths.listFiles('embeddings').map((f) => f.replace(/\.[^.]+$/, ''))));
  app.get('/models', (_req, res) => void res.json(paths.folderNames()));
  app.get('/models/:folder', (req, res) => {
    if (!paths.hasFolder(req.params.folder)) return void res.sendStatus(404);
    res.json(paths.listFiles(req.params.folder));
  });
  app.get('/system_stats', (_req, res) => {
    res.json({
      system: {
        os: process.platform,
        ram_total: os.totalmem(),
        ram_free: os.freemem(),
        comfyui_version: VERSION,
        weft_version: VERSION,
        python_version: `node ${process.version}`,
        pytorch_version: 'onnxruntime-node',
        embedded_python: false,
        argv: redactArgv(process.argv.slice(1)),
      },
      devices: [{ name: 'cpu', type: 'cpu', index: 0, vram_total: 0, vram_free: 0, torch_vram_total: 0, torch_vram_free: 0 }],
    });
  });
  app.get('/extensions', (_req, res) => {
    const out: string[] = [];
    for (const p of opts.customNodes ?? []) {
      if (!p.webDirectory || !fs.existsSync(p.webDirectory)) continue;
      for (const f of fs.readdirSync(p.webDirectory)) if (f.endsWith('.js')) out.push(`/extensions/${p.name}/${f}`);
    }
    res.json(out);
  });
  app.get('/features', (_req, res) => {
    res.json({ supports_preview_metadata: true, max_upload_size: opts.maxUploadSize ?? 100 * 1024 * 1024 });
  });
  app.get('/view', async (req, res) => {
    const filename = String(req.query.filename ?? '');
    let type = String(req.query.type ?? 'output');
    let name = filename;
    const m = /^(.*) \[(input|output|temp)\]$/.exec(filename);
    if (m) [, name, type] = m;
    if (!name || name.startsWith('/') || name.includes('..')) return void res.sendStatus(400);
    if (type !== 'output' && type !== 'input' && type !== 'temp') return void res.sendStatus(400);
    let file: string;
    try {
      // Served over HTTP, so no links: nodes (LoadImage) follow links in input/, this route does not.
      const dir = safeJoin(paths.typeDir(type), String(req.query.subfolder ?? ''));
      file = safeJoin(dir, path.basename(name));
    } catch {
      return void res.sendStatus(403);
    }
    if (!isFile(file)) return void res.sendStatus(404);
    const active = isActiveType(file);
    res.setHeader('Content-Disposition', contentDisposition(active ? 'attachment' : 'inline', path.basename(file)));
    res.setHeader('Content-Security-Policy', FILE_CSP);
    const preview = typeof req.query.preview === 'string' ? req.query.preview : undefined;
    const channelParam = typeof req.query.channel === 'string' ? req.query.channel : '';
    const channel = channelParam || 'rgba';
    if (preview || channel !== 'rgba') {
      try {
        let img = sharp(file, { limitInputPixels: maxPixels });
        if (channel === 'rgb') return void res.type('png').send(await img.removeAlpha().png().toBuffer());
        if (channel === 'a') {
          // The alpha plane under black RGB, all in libvips' threads (a per-pixel JS loop held the event loop).
          const { data, info } = await img.ensureAlpha().extractChannel(3).raw().toBuffer({ resolveWithObject: true });
          const black = sharp({ create: { width: info.width, height: info.height, channels: 3, background: { r: 0, g: 0, b: 0 } } });
          return void res.type('png').send(
            await black
              .joinChannel(data, { raw: { width: info.width, height: info.height, channels: 1 } })
              .png()
              .toBuffer(),
          );
        }
        const [fmt, q] = (preview ?? '').split(';');
        const quality = Math.min(100, Math.max(1, Number(q) || 90));
        const asWebp = (fmt !== 'jpeg' && fmt !== 'webp') || fmt === 'webp' || channelParam.includes('a');
        img = asWebp ? img.webp({ quality }) : img.jpeg({ quality });
        return void res.type(asWebp ? 'webp' : 'jpeg').send(await img.toBuffer());
      } catch {
        return void res.status(400).json({ error: 'cannot convert this file' });
      }
    }
    if (active) res.type('application/octet-stream');
    res.sendFile(file);
  });
  uploadRoutes(app, { paths, maxUploadSize: opts.maxUploadSize ?? 100 * 1024 * 1024, maxPixels });
  userdataRoutes(app, paths.userDir);
  app.get('/view_metadata/:folder', (req, res) => {
    const name = String(req.query.filename ?? '');
    if (!paths.hasFolder(req.params.folder) || !name.endsWith('.safetensors')) return void res.sendStatus(404);
    let file: string | undefined;
    try {
      file = paths.find(req.params.folder, name);
    } catch {
      return void res.sendStatus(403);
    }
    if (!file) return void res.sendStatus(404);
    try {
      const f = SafetensorsFile.open(file);
      const meta = f.metadata();
      f.close();
      if (!Object.keys(meta).length) return void res.sendStatus(404);
      res.json(meta);
    } catch {
      res.sendStatus(404);
    }
  });
  app.get('/internal/folder_paths', (_req, res) => {
    res.json(Object.fromEntries(paths.folderNames().map((f) => [f, paths.searchPaths(f)])));
  });
  app.get('/workflow_templates', (_req, res) => {
    const dir = opts.workflowTemplatesDir;
    const names =
      dir && fs.existsSync(dir)
        ? fs
            .readdirSync(dir)
            .filter((f) => f.endsWith('.json'))
            .map((f) => f.slice(0, -5))
        : [];
    res.json({ weft: names });
  });

  const editorDir = opts.editorDir ?? path.resolve(import.meta.dirname, '../editor/dist');
  if (fs.existsSync(path.join(editorDir, 'index.html'))) {
    app.use(
      express.static(editorDir, {
        index: 'index.html',
        setHeaders: (res, p) => p.endsWith('index.html') && res.setHeader('Cache-Control', 'no-cache'),
      }),
    );
  } else {
    app.get(
      '/',
      (_req, res) =>
        void res
          .type('html')
          .send('<!doctype html><title>Weft</title><p>Weft is running. Build the editor with <code>npm run build:editor</code>.</p>'),
    );
  }

  app.use((err: unknown, _req: Request, res: Response, next: NextFunction) => {
    void next;
    if (res.headersSent) return void res.end();
    if (err instanceof HttpError) return void res.status(err.status).json({ error: redact.text(err.message) });
    if (err instanceof PathEscapeError) return void res.status(403).json({ error: 'path refused' });
    const e = err as { type?: string; status?: number; message?: string };
    if (e.type === 'entity.parse.failed')
      return void res
        .status(400)
        .json({ error: { type: 'invalid_json', message: 'Request body is not valid JSON', details: '', extra_info: {} }, node_errors: {} });
    if (e.type === 'entity.too.large') return void res.status(413).json({ error: 'request body too large' });
    const known = errorStatus(err);
    if (known) return void res.status(known.status).json({ error: known.message });
    log.error(`server error: ${(err as Error).stack ?? String(err)}`);
    res.status(500).json({ error: 'internal server error' });
  });

  // --- execution: one prompt at a time ---
  let working = false;
  let shuttingDown = false;
  let abandoned = false;
  const wake = (): void => {
    if (working) return;
    working = true;
    setImmediate(async () => {
      try {
        while (!shuttingDown) {
          const item = queue.take();
          if (!item) break;
          await runItem(item);
        }
      } finally {
        working = false;
      }
    });
  };
  const runItem = async (item: QueueItem): Promise<void> => {
    const [, id, prompt, extra, outputs] = item;
    const clientId = typeof extra.client_id === 'string' ? extra.client_id : undefined;
    current = { id, clientId };
    broadcastStatus();
    const onEvent = (e: ExecutionEvent): void => {
      if (e.type === 'executing') {
        if (e.data.node === null) return; // sent after history is stored, below
        if (current) current.node = e.data.node;
      }
      if (e.type === 'progress' && e.preview) {
        const c = clientId ? clients.get(clientId) : undefined;
        if (c) sendPreview(c, e.preview, e.data.node, id).catch((err: Error) => log.warn(`preview not sent: ${err.message}`));
      }
      const msg = { type: e.type, data: e.type === 'execution_error' ? redact.value(e.data) : e.data };
      if (e.type === 'execution_interrupted' && !clientId) {
        for (const c of clients.values()) send(c.ws, JSON.stringify(msg));
        return;
      }
      toClient(clientId, msg);
    };
    let entry: HistoryEntry;
    let r;
    try {
      r = await host.execute(prompt, { promptId: id, extraData: extra, outputs, onEvent });
    } catch (e) {
      log.error(`prompt ${id} failed outside any node: ${(e as Error).message}`);
      r = failedResult(id, e);
    }
    entry = historyEntryOf(item, r, redact);
    current = null;
    // A prompt cut short by shutdown stays pending in the journal and runs again after a restart,
    // unless it had to be abandoned (it would hang again): then it is recorded as interrupted.
    if (shuttingDown && r.status === 'interrupted' && !abandoned) {
      queue.requeueRunning();
      return;
    }
    try {
      queue.finish(id, entry);
    } catch (e) {
      // The journal could not take it (disk full?): the prompt stays as it was; the server goes on.
      log.error(`prompt ${id}: history not stored: ${(e as Error).message}`);
      entry = { prompt: item, outputs: {}, status: { status_str: 'error', completed: false, messages: [] }, meta: {} };
    }
    broadcastStatus();
    toClient(clientId, { type: 'executing', data: { node: null, prompt_id: id } });
  };
  const sendPreview = async (
    c: { ws: WebSocket; previewMetadata: boolean },
    preview: Parameters<typeof encodeJpeg>[0],
    node: string,
    promptId: string,
  ): Promise<void> => {
    sendJpeg(c, await encodeJpeg(preview, 95), node, promptId);
  };
  const sendJpeg = (c: { ws: WebSocket; previewMetadata: boolean }, jpeg: Buffer, node: string, promptId: string): void => {
    if (c.previewMetadata) {
      const meta = Buffer.from(
        JSON.stringify({
          node_id: node,
          prompt_id: promptId,
          display_node_id: node,
          parent_node_id: null,
          real_node_id: node,
          image_type: 'image/jpeg',
        }),
      );
      const head = Buffer.alloc(8);
      head.writeUInt32BE(4, 0);
      head.writeUInt32BE(meta.length, 4);
      send(c.ws, Buffer.concat([head, meta, jpeg]));
    } else {
      const head = Buffer.alloc(8);
      head.writeUInt32BE(1, 0);
      head.writeUInt32BE(1, 4);
      send(c.ws, Buffer.concat([head, jpeg]));
    }
  };

  const isFile = (f: string): boolean => {
    try {
      return fs.statSync(f).isFile();
    } catch {
      return false;
    }
  };

  const server = http.createServer(app);
  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 * 1024 });
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://x');
    socket.on('error', () => socket.destroy());
    if (url.pathname !== '/ws' && url.pathname !== '/api/ws') return void socket.destroy();
    if (refuseHostOrigin(req.headers, hosts, !opts.enableCorsHeader)) {
      socket.write('HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n');
      return void socket.destroy();
    }
    if (opts.authToken && !tokenMatches(presentedToken(req.headers, url.searchParams), opts.authToken)) {
      socket.write('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n');
      return void socket.destroy();
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const sid = url.searchParams.get('clientId')?.slice(0, 256) || randomUUID().replace(/-/g, '');
      clients.get(sid)?.ws.close();
      const client = { ws, previewMetadata: false };
      clients.set(sid, client);
      let first = true;
      ws.send(JSON.stringify({ type: 'status', data: { status: { exec_info: { queue_remaining: remaining() } }, sid } }));
      if (current && current.clientId === sid && current.node) ws.send(JSON.stringify({ type: 'executing', data: { node: current.node } }));
      const onMessage = async (text: string): Promise<void> => {
        let raw: unknown;
        try {
          raw = JSON.parse(text);
        } catch {
          return;
        }
        // Anything but {type, data?, id?} (null, numbers, arrays, deep junk) is ignored.
        if (deeperThan(raw, 32)) return;
        const parsed = wsMessage.safeParse(raw);
        if (!parsed.success) return;
        const msg = parsed.data;
        if (first && msg.type === 'feature_flags') {
          const flags = featureFlags.safeParse(msg.data ?? {});
          client.previewMetadata = flags.success && flags.data.supports_preview_metadata === true;
          send(
            ws,
            JSON.stringify({
              type: 'feature_flags',
              data: { supports_preview_metadata: true, max_upload_size: opts.maxUploadSize ?? 100 * 1024 * 1024 },
            }),
          );
        }
        first = false;
        if (msg.type.startsWith('workflow_')) {
          const reply = await handleWorkflowMessage(msg, { userDir: paths.userDir, templatesDir: opts.workflowTemplatesDir });
          send(ws, JSON.stringify(redact.value(reply)));
        }
      };
      ws.on('message', (data, isBinary) => {
        if (isBinary) return;
        onMessage(String(data)).catch((e: Error) => log.warn(`websocket message failed: ${e.message}`));
      });
      ws.on('close', () => {
        if (clients.get(sid)?.ws === ws) clients.delete(sid);
      });
      ws.on('error', () => ws.close());
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 8188, opts.listen ?? '127.0.0.1', () => resolve());
  });
  const addr = server.address() as { port: number };
  const listenHost = (opts.listen ?? '127.0.0.1').includes(':') ? `[${opts.listen}]` : (opts.listen ?? '127.0.0.1');
  wake();
  return {
    url: `http://${listenHost}:${addr.port}`,
    port: addr.port,
    queue,
    close: async () => {
      shuttingDown = true;
      stopLogStream();
      for (const c of clients.values()) c.ws.terminate();
      wss.close();
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections?.();
      await closed;
      // Bounded: a prompt that ignores the interrupt is abandoned after the grace period.
      const grace = opts.shutdownGraceMs ?? 5000;
      const t0 = Date.now();
      await host.close(grace);
      while (working && Date.now() - t0 < grace + 1000) await new Promise((r) => setTimeout(r, 10));
      if (working) {
        abandoned = true;
        log.warn('shutdown: the running prompt did not stop in time and was abandoned');
      }
      uninstallFaults();
      await opts.scaleOut?.close();
      queue.close();
    },
  };
}
