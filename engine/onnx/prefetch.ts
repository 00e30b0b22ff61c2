import { Worker } from 'node:worker_threads';

/**
 * Reads files once from start to end in a worker thread, so their pages are in the page cache when
 * ORT wants them. ORT maps external weights and faults them in page by page during a session's first
 * run; on a cold cache that costs seconds more than one sequential read (measured in
 * docs/benchmarks.md). A worker, because ORT's session creation blocks the main thread: reads driven
 * from it would stall exactly when they are wanted. Errors only end the read early: it is a hint.
 */

const SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
let total = 0;
const buf = Buffer.allocUnsafe(8 << 20);
for (const file of workerData.files) {
  try {
    const fd = fs.openSync(file, 'r');
    for (let at = 0; ; ) {
      const n = fs.readSync(fd, buf, 0, buf.length, at);
      if (n <= 0) break;
      at += n;
      total += n;
    }
    fs.closeSync(fd);
  } catch {}
}
parentPort.postMessage(total);
`;

/** Starts the reads, in order; the promise gives the bytes read (never rejects). The worker does not keep the process alive. */
export function prefetchFiles(files: readonly string[]): Promise<number> {
  return new Promise((resolve) => {
    try {
      const w = new Worker(SOURCE, { eval: true, workerData: { files: [...files] } });
      w.unref();
      w.once('message', (n: number) => resolve(n));
      w.once('error', () => resolve(0));
      w.once('exit', () => resolve(0));
    } catch {
      resolve(0);
    }
  });
}
