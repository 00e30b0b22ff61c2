import { boundEntry, type HistoryEntry } from '../queue.ts';
import type { RedisClient } from './redis-client.ts';
import { KEYS } from './layout.ts';

// Stores an entry only if the prompt has none (a retried job whose first attempt got this far
// must not add a second), then trims the oldest beyond the bound. Atomic, so two workers finishing
// the same prompt (one of them stalled but alive) store it once.
const STORE = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
local n = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], n, ARGV[1])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if over > 0 then
  local old = redis.call('ZRANGE', KEYS[2], 0, over - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, over - 1)
  redis.call('HDEL', KEYS[1], unpack(old))
end
return 1
`;

/** The prompt history in Redis: the embedded queue's entries, in the order they were stored, bounded. */
export class RedisHistory {
  constructor(
    private readonly redis: RedisClient,
    private readonly max: number,
  ) {
    redis.defineCommand('weftStoreHistory', { numberOfKeys: 3, lua: STORE });
  }

  /** True when this call stored it (false: the prompt already had an entry). */
  async store(id: string, entry: HistoryEntry): Promise<boolean> {
    const json = JSON.stringify(boundEntry(entry));
    return (await this.redis.runCommand('weftStoreHistory', [KEYS.history, KEYS.historyOrder, KEYS.historySeq, id, json, this.max])) === 1;
  }

  async has(id: string): Promise<boolean> {
    return (await this.redis.hexists(KEYS.history, id)) === 1;
  }

  async get(id: string): Promise<HistoryEntry | undefined> {
    const s = await this.redis.hget(KEYS.history, id);
    return s === null ? undefined : (JSON.parse(s) as HistoryEntry);
  }

  /** Oldest first; `max`/`offset` as ComfyUI's /history (the last `max` entries, `offset` from the end). */
  async list(max?: number, offset = 0): Promise<[string, HistoryEntry][]> {
    const total = await this.redis.zcard(KEYS.historyOrder);
    let from = 0;
    let to = total - 1 - offset;
    if (max !== undefined) from = Math.max(0, total - max - offset);
    if (to < from) return [];
    const ids = await this.redis.zrange(KEYS.historyOrder, from, to);
    if (!ids.length) return [];
    const values = await this.redis.hmget(KEYS.history, ...ids);
    const out: [string, HistoryEntry][] = [];
    ids.forEach((id, i) => {
      const v = values[i];
      if (v !== null) out.push([id, JSON.parse(v) as HistoryEntry]);
    });
    return out;
  }

  async delete(ids: readonly string[]): Promise<void> {
    if (!ids.length) return;
    await this.redis.send(['HDEL', KEYS.history, ...ids]);
    await this.redis.send(['ZREM', KEYS.historyOrder, ...ids]);
  }

  async clear(): Promise<void> {
    await this.redis.del(KEYS.history, KEYS.historyOrder);
  }
}
