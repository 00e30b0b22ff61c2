import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import type * as ort from 'onnxruntime-node';

/**
 * ORT's full optimisation of a large float32 graph (and its save) allocates the weights several
 * times over in fresh memory: on the 2-core VM a fresh 4 KiB page costs ~10 µs to fault, so the
 * SD1.5 UNet's optimise-and-save took 40.9 s, of which 29 s were page faults. glibc's malloc on
 * transparent huge pages (`glibc.malloc.hugetlb=1`) cuts that to 11.8 s, but glibc reads the
 * setting only at process start, and a whole process on huge pages holds ~14% more RSS for as long
 * as it runs. So the optimising session of a large build is created in a child process started with
 * it, which saves the optimised graph and exits, its memory going back with it; the parent then
 * opens the saved graph as a warm load does.
 */

/** Weights from which a first build is optimised in a child process (below, the child's start costs more than it saves). */
export const CHILD_MIN_BYTES = 256 * 2 ** 20;

/** Whether a build whose weights take `bytes` is optimised in a child: `WEFT_OPTIMIZE_IN_CHILD=0|1` forces it off or on. */
export function optimizeInChild(bytes: number, env: NodeJS.ProcessEnv = process.env): boolean {
  const forced = env.WEFT_OPTIMIZE_IN_CHILD;
  if (forced === '0' || forced === '1') return forced === '1';
  return bytes >= CHILD_MIN_BYTES;
}

/** `GLIBC_TUNABLES` with huge-page malloc added to whatever the user set (their own hugetlb choice stands). */
export function hugePageTunables(existing: string | undefined): string {
  if (!existing) return 'glibc.malloc.hugetlb=1';
  return /(^|:)glibc\.malloc\.hugetlb=/.test(existing) ? existing : `${existing}:glibc.malloc.hugetlb=1`;
}

/** The child's whole program (CommonJS, no TypeScript loader needed): create the session, which saves, then release it. */
const CHILD_SOURCE = `
const [ortPath, model, json] = process.argv.slice(1);
require(ortPath).InferenceSession.create(model, JSON.parse(json)).then(
  (s) => s.release().then(() => process.exit(0)),
  (e) => { process.stderr.write(String((e && e.message) || e)); process.exit(3); },
);`;

/** Bytes of the child's error output kept for the message. */
const STDERR_LIMIT = 16 << 10;

/**
 * Creates a session over `model` with `options` (which name where ORT saves the optimised graph) in
 * a child process with huge-page malloc, and waits for it to exit. Rejects with the child's own
 * message when it fails or is killed (out of memory, say); the caller then optimises in-process.
 */
export function saveOptimizedInChild(model: string, options: ort.InferenceSession.SessionOptions): Promise<void> {
  const ortPath = createRequire(import.meta.url).resolve('onnxruntime-node');
  const env = { ...process.env, GLIBC_TUNABLES: hugePageTunables(process.env.GLIBC_TUNABLES) };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', CHILD_SOURCE, ortPath, model, JSON.stringify(options)], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      if (stderr.length < STDERR_LIMIT) stderr += d.slice(0, STDERR_LIMIT - stderr.length);
    });
    // The parent exiting (a stopped server, Ctrl-C) takes the child with it instead of leaving it optimising.
    const stop = (): void => void child.kill('SIGKILL');
    process.once('exit', stop);
    child.on('error', (e) => {
      process.off('exit', stop);
      reject(e);
    });
    child.on('close', (code, signal) => {
      process.off('exit', stop);
      if (code === 0) return resolve();
      const why = signal ? `was killed by ${signal}` : `exited with ${code}`;
      reject(new Error(`the optimising process for ${model} ${why}${stderr.trim() ? `: ${stderr.trim().split('\n')[0]}` : ''}`));
    });
  });
}
