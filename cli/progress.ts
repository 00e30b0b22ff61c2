import type { ExecutionEvent } from '../engine/executor/events.ts';

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
