import { Worker } from 'node:worker_threads';

/**
 * Runs a worker thread from CommonJS `source` (functions injected as their source text: no TypeScript
 * loader runs in workers) and settles with what it posts: `{ ok: true, value }` resolves with `value`,
 * `{ ok: false, message }` rejects with the message, and a worker that ends without posting rejects
 * naming `what`.
 */
export function runEvalWorker<T>(source: string, workerData: unknown, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const w = new Worker(source, { eval: true, workerData });
    let settled = false;
    w.once('message', (m: { ok: boolean; value?: T; message?: string }) => {
      settled = true;
      if (m.ok) resolve(m.value as T);
      else reject(new Error(m.message ?? `${what} failed`));
    });
    w.once('error', (e) => {
      settled = true;
      reject(e);
    });
    w.once('exit', (code) => {
      if (!settled) reject(new Error(`${what} exited (code ${code}) before it finished`));
    });
  });
}
