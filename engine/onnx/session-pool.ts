import * as ort from 'onnxruntime-node';

/**
 * Loaded ORT sessions under a memory budget. A session is created on first use, kept while the
 * budget allows, and the least recently used idle one is released when a new one would not fit
 * (a session in the middle of a run is never released). Concurrent first uses share one load.
 */

interface Entry {
  key: string;
  bytes: number;
  session?: ort.InferenceSession;
  loading?: Promise<ort.InferenceSession>;
  users: number;
  lastUsed: number;
  /** Variants of one part's weights share a family (see `use`). */
  family?: string;
}

export interface PoolStats {
  budget: number;
  /** Bytes held by `reserve` now. */
  reserved: number;
  loaded: { key: string; bytes: number }[];
  loads: number;
  evictions: number;
  bytes: number;
  /** The latest session creation and how long it took (benchmarks). */
  lastLoad?: { key: string; ms: number };
}

export class SessionPool {
  private readonly entries = new Map<string, Entry>();
  private tick = 0;
  private loads = 0;
  private lastLoad?: { key: string; ms: number };
  private evictions = 0;
  /** Working memory held by `reserve` callers, counted against the budget like a loaded session. */
  private readonly reserved = new Map<number, number>();
  private nextReservation = 0;

  constructor(
    private readonly budgetBytes: number,
    private readonly onEvent: (msg: string) => void = () => {},
  ) {}

  /**
   * Runs `fn` with the session for `key`, loading it with `create` when absent. Sessions of one
   * `family` are variants of the same weights (a UNet with and without LoRAs): loading one first
   * unloads the idle others, so stacking or re-weighting LoRAs never holds two copies of a UNet.
   */
  async use<T>(
    key: string,
    bytes: number,
    create: () => Promise<ort.InferenceSession>,
    fn: (s: ort.InferenceSession) => Promise<T>,
    family?: string,
  ): Promise<T> {
    let e = this.entries.get(key);
    if (!e) {
      e = { key, bytes, users: 0, lastUsed: 0 };
      this.entries.set(key, e);
    }
    e.users++;
    e.lastUsed = ++this.tick;
    try {
      if (!e.session) {
        if (!e.loading) {
          if (family !== undefined) {
            e.family = family;
            for (const o of [...this.entries.values()])
              if (o !== e && o.family === family && o.session && o.users === 0) await this.unload(o, `for its variant ${key}`);
          }
          await this.makeRoom(bytes, key);
          const entry = e;
          const t0 = performance.now();
          entry.loading = create().then(
            (s) => {
              entry.session = s;
              entry.loading = undefined;
              this.loads++;
              this.lastLoad = { key: entry.key, ms: performance.now() - t0 };
              return s;
            },
            (err: unknown) => {
              entry.loading = undefined;
              throw err;
            },
          );
        }
        await e.loading;
      }
      return await fn(e.session!);
    } finally {
      e.users--;
      if (!e.session && !e.loading && e.users === 0) this.entries.delete(key);
    }
  }

  private async makeRoom(bytes: number, forKey: string): Promise<void> {
    const held = this.reservedBytes();
    const used = (): number => held + [...this.entries.values()].reduce((s, e) => s + (e.session || e.loading ? e.bytes : 0), 0);
    while (used() + bytes > this.budgetBytes) {
      const idle = [...this.entries.values()]
        .filter((e) => e.session && e.users === 0 && e.key !== forKey)
        .sort((a, b) => a.lastUsed - b.lastUsed);
      const victim = idle[0];
      if (!victim) break; // Everything loaded is in use: go over budget rather than deadlock.
      await this.unload(victim, `to make room for ${forKey}`);
    }
  }

  private async unload(e: Entry, why: string): Promise<void> {
    const s = e.session;
    e.session = undefined;
    this.entries.delete(e.key);
    this.evictions++;
    this.onEvent(`unloaded ${e.key} (${(e.bytes / 2 ** 20).toFixed(0)} MiB) ${why}`);
    await s?.release();
  }

  /**
   * Holds `bytes` of the budget for work outside the sessions (a tiled VAE's tiles) until the returned
   * function is called, first releasing idle sessions, least recently used first, until loaded
   * sessions and holds fit the budget with it: on a machine given a small budget, the UNet sampling
   * left idle goes before a large decode instead of the decode's memory landing on top of it (what
   * ComfyUI's free_memory does for a VAE on a GPU). Within the budget it releases nothing.
   */
  async reserve(bytes: number, why: string): Promise<() => void> {
    await this.makeRoom(bytes, why);
    const id = this.nextReservation++;
    this.reserved.set(id, bytes);
    return () => void this.reserved.delete(id);
  }

  private reservedBytes(): number {
    return [...this.reserved.values()].reduce((a, b) => a + b, 0);
  }

  /** Releases `key`'s session if it is loaded and idle (`why` for the log). */
  async release(key: string, why: string): Promise<void> {
    const e = this.entries.get(key);
    if (e?.session && e.users === 0) await this.unload(e, why);
  }

  /** Releases every idle session (e.g. on `/free`). */
  async clear(): Promise<void> {
    for (const e of [...this.entries.values()]) if (e.session && e.users === 0) await this.unload(e, 'on request');
  }

  stats(): PoolStats {
    const loaded = [...this.entries.values()].filter((e) => e.session).map((e) => ({ key: e.key, bytes: e.bytes }));
    return {
      budget: this.budgetBytes,
      reserved: this.reservedBytes(),
      loaded,
      loads: this.loads,
      evictions: this.evictions,
      bytes: loaded.reduce((s, e) => s + e.bytes, 0),
      lastLoad: this.lastLoad,
    };
  }
}
