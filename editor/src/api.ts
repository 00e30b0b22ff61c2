/**
 * The editor's connection to a Weft (or ComfyUI) server: HTTP for object_info, prompts, queue and
 * history; one WebSocket for execution events, previews and workflow file operations.
 */
import type { ObjectInfo } from '../../engine/registry/registry.ts';

export type ServerMessage = { type: string; data: Record<string, unknown> };

export interface ApiClientEvents {
  message(msg: ServerMessage): void;
  preview(blob: Blob, nodeId: string | null): void;
  connection(open: boolean): void;
}

export class ApiClient {
  readonly clientId: string;
  private ws: WebSocket | null = null;
  private pending = new Map<string, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private seq = 0;
  private listeners: Partial<{ [K in keyof ApiClientEvents]: ApiClientEvents[K][] }> = {};
  private closed = false;

  constructor(private readonly base = '') {
    const stored = sessionStorage.getItem('weft.clientId');
    this.clientId = stored ?? crypto.randomUUID().replace(/-/g, '');
    sessionStorage.setItem('weft.clientId', this.clientId);
  }

  on<K extends keyof ApiClientEvents>(event: K, fn: ApiClientEvents[K]): () => void {
    const list = (this.listeners[event] ??= []) as ApiClientEvents[K][];
    list.push(fn);
    return () => {
      const i = list.indexOf(fn);
      if (i >= 0) list.splice(i, 1);
    };
  }

  private emit<K extends keyof ApiClientEvents>(event: K, ...args: Parameters<ApiClientEvents[K]>): void {
    for (const fn of this.listeners[event] ?? []) (fn as (...a: Parameters<ApiClientEvents[K]>) => void)(...args);
  }

  connect(): void {
    this.closed = false;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}${this.base}/ws?clientId=${this.clientId}`);
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: 'feature_flags', data: { supports_preview_metadata: true } }));
      this.emit('connection', true);
    };
    ws.onclose = () => {
      this.emit('connection', false);
      for (const p of this.pending.values()) p.reject(new Error('connection closed'));
      this.pending.clear();
      if (!this.closed) setTimeout(() => this.connect(), 1000);
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data === 'string') {
        const msg = JSON.parse(ev.data) as ServerMessage;
        if (msg.type === 'workflow_result') {
          const id = String(msg.data.id);
          const p = this.pending.get(id);
          if (p) {
            this.pending.delete(id);
            if (msg.data.ok) p.resolve(msg.data.result);
            else p.reject(new Error(String(msg.data.error ?? 'workflow operation failed')));
          }
          return;
        }
        this.emit('message', msg);
      } else {
        this.onBinary(ev.data as ArrayBuffer);
      }
    };
    this.ws = ws;
  }

  close(): void {
    this.closed = true;
    this.ws?.close();
  }

  /** ComfyUI's binary frames: type 1 = [format][image], type 4 = [len][json metadata][image]. */
  private onBinary(buf: ArrayBuffer): void {
    const view = new DataView(buf);
    const type = view.getUint32(0);
    if (type === 1) {
      const format = view.getUint32(4);
      this.emit('preview', new Blob([buf.slice(8)], { type: format === 2 ? 'image/png' : 'image/jpeg' }), null);
    } else if (type === 4) {
      const len = view.getUint32(4);
      const meta = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 8, len))) as { node_id?: string; image_type?: string };
      this.emit('preview', new Blob([buf.slice(8 + len)], { type: meta.image_type ?? 'image/jpeg' }), meta.node_id ?? null);
    }
  }

  /** A workflow file operation over the WebSocket (list, load, save, rename, delete). */
  workflowOp<T>(type: string, data: Record<string, unknown> = {}): Promise<T> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return Promise.reject(new Error('not connected to the server'));
    const id = `op${++this.seq}`;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      ws.send(JSON.stringify({ type, id, data }));
    });
  }

  async json<T>(path: string, init?: RequestInit): Promise<T> {
    const r = await fetch(`${this.base}/api${path}`, init);
    const text = await r.text();
    const body = text ? (JSON.parse(text) as T) : (undefined as T);
    if (!r.ok) throw Object.assign(new Error(`${init?.method ?? 'GET'} ${path}: ${r.status}`), { status: r.status, body });
    return body;
  }

  objectInfo(): Promise<ObjectInfo> {
    return this.json<ObjectInfo>('/object_info');
  }

  /** `front` queues ahead of the pending prompts (ComfyUI's `front`). */
  queuePrompt(
    prompt: unknown,
    workflow: unknown,
    opts: { front?: boolean } = {},
  ): Promise<{ prompt_id: string; number: number; node_errors: Record<string, unknown> }> {
    return this.json('/prompt', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        prompt,
        client_id: this.clientId,
        extra_data: { extra_pnginfo: { workflow } },
        ...(opts.front ? { front: true } : {}),
      }),
    });
  }

  interrupt(): Promise<void> {
    return this.json('/interrupt', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  }

  queue(): Promise<{ queue_running: unknown[][]; queue_pending: unknown[][] }> {
    return this.json('/queue');
  }

  deleteFromQueue(ids: string[]): Promise<void> {
    return this.json('/queue', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ delete: ids }) });
  }

  clearQueue(): Promise<void> {
    return this.json('/queue', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ clear: true }) });
  }

  history(maxItems = 50): Promise<Record<string, HistoryItem>> {
    return this.json(`/history?max_items=${maxItems}`);
  }

  deleteHistory(ids: string[]): Promise<void> {
    return this.json('/history', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ delete: ids }),
    });
  }

  clearHistory(): Promise<void> {
    return this.json('/history', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ clear: true }),
    });
  }

  viewUrl(img: ImageRef): string {
    const q = new URLSearchParams({ filename: img.filename, subfolder: img.subfolder ?? '', type: img.type ?? 'output' });
    return `${this.base}/api/view?${q}`;
  }
}

export interface ImageRef {
  filename: string;
  subfolder?: string;
  type?: string;
}

/** One finished prompt: the queue item is [number, prompt_id, prompt, extra_data, outputs to execute]. */
export interface HistoryItem {
  prompt: [number, string, unknown, { extra_pnginfo?: { workflow?: unknown } }?, unknown?];
  outputs: Record<string, { images?: ImageRef[] }>;
  status: { status_str: string };
}
