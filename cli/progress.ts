import type { ExecutionEvent } from '../engine/executor/events.ts';
import type { BuildProgress } from '../engine/onnx/build-cache.ts';

/**
 * A one-line progress display on a terminal: the running node and its step bar. Writes nothing when
 * the stream is not a TTY, so piped output and `--json` stay clean.
 */
export class ProgressBar {
  private current = '';
  private lastDraw = 0;

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly classOf: (nodeId: string) => string,
  ) {}

  get enabled(): boolean {
    return this.stream.isTTY === true;
  }

  onEvent(e: ExecutionEvent): void {
    if (!this.enabled) return;
    if (e.type === 'executing') {
      if (e.data.node === null) return this.clear();
      this.current = `#${e.data.node} ${this.classOf(e.data.node)}`;
      this.draw(this.current);
    } else if (e.type === 'progress') {
      const now = Date.now();
      if (now - this.lastDraw < 50 && e.data.value < e.data.max) return;
      this.lastDraw = now;
      const width = 24;
      const filled = Math.round((e.data.value / Math.max(1, e.data.max)) * width);
      this.draw(`${this.current} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${e.data.value}/${e.data.max}`);
    } else if (e.type === 'execution_success' || e.type === 'execution_error' || e.type === 'execution_interrupted') {
      this.clear();
    }
  }

  private readonly builds = new Map<string, { done: number; total: number }>();
  private buildStart = 0;

  /** A first build of a model part: that part's share written and all builds of this run together. */
  onBuild(p: BuildProgress): void {
    if (!this.enabled) return;
    if (this.builds.size === 0) this.buildStart = Date.now();
    this.builds.set(p.key, { done: p.phase === 'write' ? p.done : p.total, total: p.total });
    const secs = `${((Date.now() - this.buildStart) / 1000).toFixed(0)} s`;
    if (p.phase === 'optimise') return this.draw(`${this.current} · optimising ${p.part} (once) · ${secs}`);
    if (p.phase === 'done') return this.draw(this.current);
    const now = Date.now();
    if (now - this.lastDraw < 100) return;
    this.lastDraw = now;
    let done = 0;
    let total = 0;
    for (const b of this.builds.values()) {
      done += b.done;
      total += b.total;
    }
    const pct = (d: number, t: number): string => `${Math.floor((100 * d) / Math.max(1, t))}%`;
    this.draw(
      `${this.current} · building ${p.part} ${pct(p.done, p.total)} · all builds ${pct(done, total)} of ${(total / 2 ** 30).toFixed(2)} GiB · ${secs}`,
    );
  }

  private draw(text: string): void {
    const cols = this.stream.columns ?? 80;
    this.stream.write(`\r${text.slice(0, cols - 1).padEnd(cols - 1)}`);
  }

  clear(): void {
    if (!this.enabled) return;
    const cols = this.stream.columns ?? 80;
    this.stream.write(`\r${' '.repeat(cols - 1)}\r`);
  }
}
