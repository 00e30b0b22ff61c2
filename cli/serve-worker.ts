import { Executor } from '../engine/executor/executor.ts';
import { consoleLogger, silentLogger } from '../engine/core/log.ts';
import { setMaxImagePixels } from '../engine/image/io.ts';
import { createEnvironment, type EnvironmentOptions } from './environment.ts';

/** What `weft serve` hands its execution worker (structured-clonable: no logger, no functions). */
export interface ServeWorkerOptions extends Omit<EnvironmentOptions, 'log'> {
  quiet?: boolean;
  /** Limit for one call of a custom node in ms (0 = none); built-in nodes have none. */
  customNodeTimeoutMs?: number;
  maxImagePixels?: number;
}

/** The environment options without the logger (which cannot cross to the worker). */
export function serveWorkerOptions(
  env: EnvironmentOptions,
  extra: Pick<ServeWorkerOptions, 'customNodeTimeoutMs' | 'maxImagePixels' | 'quiet'>,
): ServeWorkerOptions {
  const out: ServeWorkerOptions & { log?: unknown } = { ...env, ...extra };
  delete out.log;
  return out;
}

/**
 * Builds the execution worker's own environment: registry, custom nodes, model manager and output
 * cache all live in the worker, beside the ORT sessions that use them (see docs/architecture.md).
 */
export async function createServeExecutor(options: ServeWorkerOptions): Promise<Executor> {
  const log = options.quiet ? silentLogger : consoleLogger;
  if (options.maxImagePixels) setMaxImagePixels(options.maxImagePixels);
  const env = await createEnvironment({ ...options, log });
  const limit = options.customNodeTimeoutMs;
  return new Executor(env.registry, {
    paths: env.paths,
    services: env.services,
    log,
    cacheBudgetBytes: options.cacheBudgetBytes,
    ...(limit === undefined
      ? {}
      : {
          nodeTimeoutMs: (_cls: string, module: string | undefined) =>
            module?.startsWith('custom_nodes.') && limit > 0 ? limit : undefined,
        }),
  });
}
