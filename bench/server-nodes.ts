import { Executor } from '../engine/executor/executor.ts';
import { FolderPaths } from '../engine/paths/folders.ts';
import { silentLogger } from '../engine/core/log.ts';
import { defineNode } from '../engine/registry/types.ts';
import type { NodeRegistry } from '../engine/registry/registry.ts';
import { createBuiltinRegistry } from '../nodes/index.ts';

/** The built-in nodes plus BenchSpin: `ms` of JavaScript that never yields (a CPU-heavy custom node). */
export function benchRegistry(): NodeRegistry {
  const registry = createBuiltinRegistry();
  registry.register(
    defineNode({
      name: 'BenchSpin',
      inputs: { required: { image: { type: 'IMAGE' }, ms: { type: 'INT', default: 10_000, min: 0, max: 600_000 } } },
      outputs: [{ type: 'IMAGE' }],
      run: ({ image, ms }) => {
        const end = Date.now() + ms;
        let x = 0;
        while (Date.now() < end) for (let i = 0; i < 1000; i++) x = Math.sqrt(x + i);
        return [x < 0 ? image : image];
      },
    }),
  );
  return registry;
}

/** The execution worker's setup export for bench/server.ts. */
export function createBenchExecutor(options: { baseDir: string }): Executor {
  return new Executor(benchRegistry(), { paths: new FolderPaths({ baseDir: options.baseDir }), log: silentLogger });
}
