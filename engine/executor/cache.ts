/**
 * Node outputs by signature, bounded by a byte budget with least-recently-used eviction. Entries of
 * the prompt being executed are pinned so a long prompt never evicts what it is about to read.
 */
export interface CacheEntry {
  /** Outputs as lists of items (ComfyUI: every value is a list). */
  outputs: unknown[][];
  ui?: Record<string, unknown[]>;
  bytes: number;
}

export class OutputCache {
  private readonly map = new Map<string, CacheEntry>();
  private readonly pinned = new Set<string>();
  private total = 0;
  hits = 0;
  misses = 0;

  constructor(public budgetBytes: number) {}

  get(key: string): CacheEntry | undefined {
    const e = this.map.get(key);
    if (!e) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    // Re-insert to move to the most-recent end of the Map's insertion order.
    this.map.delete(key);
    this.map.set(key, e);
    return e;
  }

  peek(key: string): CacheEntry | undefined {
    return this.map.get(key);
  }

  set(key: string, entry: CacheEntry): void {
    const old = this.map.get(key);
    if (old) {
      this.total -= old.bytes;
      this.map.delete(key);
    }
    if (entry.bytes > this.budgetBytes) return;
    this.map.set(key, entry);
    this.total += entry.bytes;
    this.evict();
  }

  pin(keys: Iterable<string>): void {
    for (const k of keys) this.pinned.add(k);
  }

  unpinAll(): void {
    this.pinned.clear();
    this.evict();
  }

  clear(): void {
    this.map.clear();
    this.total = 0;
  }

  get size(): number {
    return this.map.size;
  }

  get bytes(): number {
    return this.total;
  }

  private evict(): void {
    if (this.total <= this.budgetBytes) return;
    for (const [k, e] of this.map) {
      if (this.total <= this.budgetBytes) break;
      if (this.pinned.has(k)) continue;
      this.map.delete(k);
      this.total -= e.bytes;
    }
  }
}

/**
 * Bytes held by a value: typed arrays' buffers, objects that report `byteSize`, and plain
 * objects/arrays walked to a bounded depth. Shared buffers count once.
 */
export function estimateBytes(value: unknown, seen = new Set<unknown>(), depth = 0): number {
  if (value === null || typeof value !== 'object' || depth > 8 || seen.has(value)) return 0;
  seen.add(value);
  if (ArrayBuffer.isView(value)) {
    if (seen.has(value.buffer)) return 0;
    seen.add(value.buffer);
    return value.byteLength;
  }
  const size = (value as { byteSize?: unknown }).byteSize;
  if (typeof size === 'number') return size;
  let n = 0;
  if (Array.isArray(value)) {
    for (const v of value) n += estimateBytes(v, seen, depth + 1);
    return n + 8 * value.length;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return 0;
  for (const v of Object.values(value as Record<string, unknown>)) n += estimateBytes(v, seen, depth + 1);
  return n;
}
