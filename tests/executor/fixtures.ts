/** Small test nodes and helpers shared by the executor tests (a real NodeRegistry, no mocks). */
import os from 'node:os';
import path from 'node:path';
import { Executor, type ExecutorOptions } from '../../engine/executor/executor.ts';
import type { ExecutionEvent, ExecutionResult } from '../../engine/executor/events.ts';
import type { ApiPrompt } from '../../engine/graph/prompt.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { NodeRegistry } from '../../engine/registry/registry.ts';
import { defineNode, type AnyNodeDefinition } from '../../engine/registry/types.ts';

export const paths = new FolderPaths({ baseDir: path.join(os.tmpdir(), 'weft-executor-tests-unused') });

/** Records which node ids ran, in order; shared by the nodes of one registry. */
export interface Recorder {
  runs: string[];
}

export function coreNodes(rec: Recorder): AnyNodeDefinition[] {
  return [
    defineNode({
      name: 'Const',
      inputs: { required: { value: { type: 'INT', default: 0 } } },
      outputs: [{ type: 'INT' }],
      run: ({ value }, ctx) => {
        rec.runs.push(ctx.nodeId);
        return [value];
      },
    }),
    defineNode({
      name: 'Add',
      inputs: { required: { a: { type: 'INT' }, b: { type: 'INT' } }, optional: { k: { type: 'INT', default: 0 } } },
      outputs: [{ type: 'INT' }],
      run: ({ a, b, k }, ctx) => {
        rec.runs.push(ctx.nodeId);
        return [a + b + (k ?? 0)];
      },
    }),
    defineNode({
      name: 'Show',
      inputs: { required: { v: { type: '*' } } },
      outputs: [],
      outputNode: true,
      run: ({ v }, ctx) => {
        rec.runs.push(ctx.nodeId);
        return { ui: { values: [v] } };
      },
    }),
    defineNode({
      name: 'Sink',
      inputs: { required: { v: { type: '*' } } },
      outputs: [],
      outputNode: true,
      run: (_args, ctx) => {
        rec.runs.push(ctx.nodeId);
        return [];
      },
    }),
  ];
}

export function setup(extra: (rec: Recorder) => AnyNodeDefinition[] = () => [], opts: Partial<ExecutorOptions> = {}) {
  const rec: Recorder = { runs: [] };
  const registry = new NodeRegistry();
  registry.registerAll([...coreNodes(rec), ...extra(rec)]);
  const ex = new Executor(registry, { paths, ...opts });
  const events: ExecutionEvent[] = [];
  /** Runs a prompt, returning the result, and the node ids that ran and the events of this prompt only. */
  const exec = async (
    prompt: ApiPrompt,
    o: { promptId?: string; outputs?: string[]; signal?: AbortSignal; extraPngInfo?: Record<string, unknown> } = {},
  ) => {
    rec.runs.length = 0;
    events.length = 0;
    const result: ExecutionResult = await ex.execute(prompt, {
      promptId: o.promptId ?? 'p',
      outputs: o.outputs,
      signal: o.signal,
      extraData: o.extraPngInfo ? { extra_pnginfo: o.extraPngInfo } : undefined,
      onEvent: (e) => events.push(e),
    });
    return { result, runs: [...rec.runs], events: [...events] };
  };
  return { ex, registry, rec, exec };
}

/** `type:node` for events that name a node, else the type: a compact view of an event sequence. */
export function eventTrace(events: readonly ExecutionEvent[]): string[] {
  return events.map((e) => {
    if (e.type === 'executing' || e.type === 'executed') return `${e.type}:${e.data.node}`;
    if (e.type === 'progress') return `progress:${e.data.node}:${e.data.value}/${e.data.max}`;
    return e.type;
  });
}

/** Deterministic PRNG (mulberry32) so random graphs are the same on every run. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
