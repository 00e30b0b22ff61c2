/**
 * ComfyUI's execution list without recursion: staged nodes wait on their unfinished sources ("strong
 * links"); among ready nodes the one earliest in dependency order runs next, which finishes one
 * output's branch before starting the next (outputs get their results early, intermediates die young).
 */
export class ExecutionList {
  private readonly heap: string[] = [];
  private readonly inHeap = new Set<string>();
  private readonly blockCount = new Map<string, number>();
  private readonly dependents = new Map<string, Set<string>>();

  /**
   * @param priority position in dependency order (lower runs first)
   * @param isDone whether a node's outputs are available (may resolve a cache hit as a side effect)
   * @param sources the sources a node needs before it can be attempted (non-lazy links)
   */
  constructor(
    private readonly priority: (id: string) => number,
    private readonly isDone: (id: string) => boolean,
    private readonly sources: (id: string) => Iterable<string>,
  ) {}

  /** Stages `root` and every unfinished source it transitively needs. */
  add(root: string): void {
    const stack = [root];
    while (stack.length) {
      const id = stack.pop()!;
      if (this.blockCount.has(id) || this.isDone(id)) continue;
      this.blockCount.set(id, 0);
      for (const src of this.sources(id)) {
        if (this.isDone(src)) continue;
        if (this.block(src, id) && !this.blockCount.has(src)) stack.push(src);
      }
      if (this.blockCount.get(id) === 0) this.push(id);
    }
  }

  /** Makes `to` wait for `from` (a lazy input it asked for); false if `from` is already done. */
  require(from: string, to: string): boolean {
    if (this.isDone(from)) return false;
    if (this.block(from, to)) this.add(from);
    return true;
  }

  isBlocked(id: string): boolean {
    return (this.blockCount.get(id) ?? 0) > 0;
  }

  /** The ready node to attempt next, or undefined when none is ready. */
  next(): string | undefined {
    const id = this.pop();
    if (id !== undefined) this.inHeap.delete(id);
    return id;
  }

  /** Marks `id` finished and readies the nodes that waited only on it. */
  complete(id: string): void {
    this.blockCount.delete(id);
    const waiting = this.dependents.get(id);
    if (!waiting) return;
    this.dependents.delete(id);
    for (const d of waiting) {
      const n = this.blockCount.get(d)! - 1;
      this.blockCount.set(d, n);
      if (n === 0) this.push(d);
    }
  }

  /** Staged nodes not finished yet (non-zero after the loop means something could never run). */
  pendingIds(): string[] {
    return [...this.blockCount.keys()];
  }

  private block(from: string, to: string): boolean {
    let set = this.dependents.get(from);
    if (!set) {
      set = new Set();
      this.dependents.set(from, set);
    }
    if (set.has(to)) return false;
    set.add(to);
    this.blockCount.set(to, (this.blockCount.get(to) ?? 0) + 1);
    return true;
  }

  private push(id: string): void {
    if (this.inHeap.has(id)) return;
    this.inHeap.add(id);
    const h = this.heap;
    h.push(id);
    let i = h.length - 1;
    const p = this.priority(id);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.priority(h[parent]) <= p) break;
      h[i] = h[parent];
      i = parent;
    }
    h[i] = id;
  }

  private pop(): string | undefined {
    const h = this.heap;
    if (!h.length) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length) {
      let i = 0;
      const p = this.priority(last);
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const r = l + 1;
        const c = r < h.length && this.priority(h[r]) < this.priority(h[l]) ? r : l;
        if (this.priority(h[c]) >= p) break;
        h[i] = h[c];
        i = c;
      }
      h[i] = last;
    }
    return top;
  }
}
