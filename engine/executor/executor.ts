import { randomUUID } from 'node:crypto';
import type { FolderPaths } from '../paths/folders.ts';
import { isLink, unwrapValue, type ApiPrompt, type Link } from '../graph/prompt.ts';
import {
  InterruptedError,
  silentLogger,
  type EngineServices,
  type Logger,
  type NodeContext,
  type PreviewImage,
} from '../registry/context.ts';
import type { NodeRegistry } from '../registry/registry.ts';
import { isResultObject, type AnyNodeDefinition, type UiOutput } from '../registry/types.ts';
import { OutputCache, estimateBytes, type CacheEntry } from './cache.ts';
import type { ExecuteOptions, ExecutionErrorData, ExecutionEvent, ExecutionResult } from './events.ts';
import { formatInputs } from './format.ts';
import { SignatureBuilder, canonical } from './signature.ts';

export interface ExecutorOptions {
  paths: FolderPaths;
  services?: EngineServices;
  log?: Logger;
  /** Bytes of node outputs kept between prompts (default 4 GiB). */
  cacheBudgetBytes?: number;
  /** 'none' re-runs every node every time (ComfyUI --cache-none). */
  cacheMode?: 'lru' | 'none';
}

class NodeFailure extends Error {
  constructor(
    readonly nodeId: string,
    readonly classType: string,
    readonly error: unknown,
    readonly inputs: Record<string, unknown>,
  ) {
    super(error instanceof Error ? error.message : String(error));
  }
}

interface RunState {
  prompt: ApiPrompt;
  promptId: string;
  signal: AbortSignal;
  extraPngInfo: Record<string, unknown>;
  emit: (e: ExecutionEvent) => void;
  signatures: SignatureBuilder;
  results: Map<string, CacheEntry>;
  inFlight: Set<string>;
  executed: string[];
  cached: string[];
  timings: Record<string, number>;
  outputs: Record<string, UiOutput>;
  outputIds: Set<string>;
  current?: string;
}

/**
 * Runs API prompts: only nodes reachable from the outputs, each once, in dependency order, reusing
 * cached outputs whose signature is unchanged. Node failures and interrupts end the prompt with an
 * event and a status; the executor itself is always ready for the next prompt.
 */
export class Executor {
  private readonly cache: OutputCache;
  private readonly log: Logger;
  private readonly services: EngineServices;

  constructor(
    private readonly registry: NodeRegistry,
    private readonly opts: ExecutorOptions,
  ) {
    this.cache = new OutputCache(opts.cacheBudgetBytes ?? 4 * 1024 ** 3);
    this.log = opts.log ?? silentLogger;
    this.services = opts.services ?? {};
  }

  clearCache(): void {
    this.cache.clear();
  }

  cacheStats(): { entries: number; bytes: number; budgetBytes: number; hits: number; misses: number } {
    return { entries: this.cache.size, bytes: this.cache.bytes, budgetBytes: this.cache.budgetBytes, hits: this.cache.hits, misses: this.cache.misses };
  }

  async execute(prompt: ApiPrompt, opts: ExecuteOptions): Promise<ExecutionResult> {
    const messages: [string, unknown][] = [];
    const listener = opts.onEvent;
    const emit = (e: ExecutionEvent): void => {
      if (e.type === 'execution_start' || e.type === 'execution_cached' || e.type === 'execution_success' || e.type === 'execution_error' || e.type === 'execution_interrupted') {
        messages.push([e.type, e.data]);
      }
      try {
        listener?.(e);
      } catch (err) {
        this.log.error(`execution event listener failed: ${(err as Error).message}`);
      }
    };
    const signal = opts.signal ?? new AbortController().signal;
    const outputIds = opts.outputs ?? Object.keys(prompt).filter((id) => this.registry.get(prompt[id].class_type)?.outputNode);
    const st: RunState = {
      prompt,
      promptId: opts.promptId,
      signal,
      extraPngInfo: opts.extraData?.extra_pnginfo ?? {},
      emit,
      signatures: undefined as unknown as SignatureBuilder,
      results: new Map(),
      inFlight: new Set(),
      executed: [],
      cached: [],
      timings: {},
      outputs: {},
      outputIds: new Set(outputIds),
    };
    emit({ type: 'execution_start', data: { prompt_id: st.promptId, timestamp: Date.now() } });
    let status: ExecutionResult['status'] = 'success';
    let error: ExecutionErrorData | undefined;
    try {
      const reachable = this.reachable(prompt, outputIds);
      st.signatures = new SignatureBuilder(prompt, (c) => this.registry.get(c), await this.fingerprints(prompt, reachable));
      const hits: string[] = [];
      if (this.opts.cacheMode !== 'none') {
        for (const id of Object.keys(prompt)) {
          if (reachable.has(id) && this.cache.peek(st.signatures.signature(id))) hits.push(id);
        }
        this.cache.pin([...reachable].map((id) => st.signatures.signature(id)));
      }
      st.cached = hits;
      emit({ type: 'execution_cached', data: { nodes: hits, prompt_id: st.promptId, timestamp: Date.now() } });
      for (const id of outputIds) await this.ensure(st, id, []);
      emit({ type: 'execution_success', data: { prompt_id: st.promptId, timestamp: Date.now() } });
    } catch (e) {
      const failure = e instanceof NodeFailure ? e : undefined;
      const cause = failure ? failure.error : e;
      const nodeId = failure?.nodeId ?? st.current ?? '';
      const nodeType = failure?.classType ?? prompt[nodeId]?.class_type ?? '';
      if (cause instanceof InterruptedError || signal.aborted) {
        status = 'interrupted';
        emit({
          type: 'execution_interrupted',
          data: { prompt_id: st.promptId, node_id: nodeId, node_type: nodeType, executed: [...st.executed], timestamp: Date.now() },
        });
      } else {
        status = 'error';
        const err = cause instanceof Error ? cause : new Error(String(cause));
        error = {
          prompt_id: st.promptId,
          node_id: nodeId,
          node_type: nodeType,
          executed: [...st.executed],
          exception_message: err.message,
          exception_type: err.name || 'Error',
          traceback: (err.stack ?? '').split('\n').slice(1).map((l) => l.trim()),
          current_inputs: failure ? formatInputs(failure.inputs) : {},
          current_outputs: [...st.results.keys()],
          timestamp: Date.now(),
        };
        this.log.error(`node ${nodeId} (${nodeType}) failed: ${err.message}`);
        emit({ type: 'execution_error', data: error });
      }
    } finally {
      this.cache.unpinAll();
    }
    emit({ type: 'executing', data: { node: null, prompt_id: st.promptId } });
    return {
      promptId: st.promptId,
      status,
      outputs: st.outputs,
      executed: st.executed,
      cached: st.cached,
      timingsMs: st.timings,
      error,
      messages,
    };
  }

  /** Nodes reachable from the outputs through links (lazy links included: they may be asked for). */
  private reachable(prompt: ApiPrompt, outputs: readonly string[]): Set<string> {
    const seen = new Set<string>();
    const stack = [...outputs];
    while (stack.length) {
      const id = stack.pop()!;
      if (seen.has(id)) continue;
      if (!prompt[id]) throw new NodeFailure(id, '', new Error(`node ${id} is linked but not in the prompt`), {});
      seen.add(id);
      for (const v of Object.values(prompt[id].inputs)) if (isLink(v)) stack.push(String(v[0]));
    }
    return seen;
  }

  private async fingerprints(prompt: ApiPrompt, ids: Iterable<string>): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const env = { paths: this.opts.paths };
    for (const id of ids) {
      const node = prompt[id];
      if (node.is_changed !== undefined) {
        out.set(id, canonical(node.is_changed));
        continue;
      }
      const def = this.registry.get(node.class_type);
      if (!def?.fingerprint) continue;
      const constants: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(node.inputs)) if (!isLink(v)) constants[k] = unwrapValue(v);
      let fp: string | number;
      try {
        fp = await def.fingerprint(constants, env);
      } catch {
        fp = Number.NaN;
      }
      // NaN never equals itself in ComfyUI: a fresh value makes the node run every time.
      out.set(id, typeof fp === 'number' && Number.isNaN(fp) ? `nan:${randomUUID()}` : canonical(fp));
    }
    return out;
  }

  private checkInterrupted(st: RunState): void {
    if (st.signal.aborted) throw new InterruptedError();
  }

  /** Make node `id`'s outputs available: from this prompt, from the cache, or by running it. */
  private async ensure(st: RunState, id: string, path: string[]): Promise<CacheEntry> {
    const done = st.results.get(id);
    if (done) return done;
    const node = st.prompt[id];
    if (!node) throw new NodeFailure(path[path.length - 1] ?? id, '', new Error(`node ${id} is linked but not in the prompt`), {});
    const def = this.registry.get(node.class_type);
    if (!def) throw new NodeFailure(id, node.class_type, new Error(`node class '${node.class_type}' does not exist`), {});
    if (st.inFlight.has(id)) throw new NodeFailure(id, node.class_type, new Error(`dependency cycle: ${[...path, id].join(' → ')}`), {});
    const key = st.signatures.signature(id);
    if (this.opts.cacheMode !== 'none') {
      const hit = this.cache.get(key);
      if (hit) {
        st.results.set(id, hit);
        if (hit.ui && st.outputIds.has(id)) {
          st.outputs[id] = hit.ui;
          st.emit({ type: 'executed', data: { node: id, display_node: id, output: hit.ui, prompt_id: st.promptId } });
        }
        return hit;
      }
    }
    st.inFlight.add(id);
    const specs = { ...(def.inputs?.required ?? {}), ...(def.inputs?.optional ?? {}) };
    const lists: Record<string, unknown[] | undefined> = {};
    const lazyNames: string[] = [];
    for (const [name, spec] of Object.entries(specs)) {
      const v = node.inputs[name];
      if (v === undefined) continue;
      if (isLink(v)) {
        if (spec.rawLink) lists[name] = [[String(v[0]), v[1]] as Link];
        else if (spec.lazy) lazyNames.push(name);
        else lists[name] = await this.linked(st, id, v, [...path, id]);
      } else {
        lists[name] = [unwrapValue(v)];
      }
    }
    if (lazyNames.length && def.checkLazyStatus) {
      for (let round = 0; round < 64; round++) {
        const available: Record<string, unknown> = {};
        for (const [k, l] of Object.entries(lists)) available[k] = l?.[0];
        for (const n of lazyNames) if (!(n in lists)) available[n] = undefined;
        const needed = (await def.checkLazyStatus(available, this.context(st, id, node.class_type))).filter(
          (n) => lazyNames.includes(n) && !(n in lists),
        );
        if (!needed.length) break;
        for (const n of needed) lists[n] = await this.linked(st, id, node.inputs[n] as Link, [...path, id]);
      }
    } else {
      for (const n of lazyNames) lists[n] = await this.linked(st, id, node.inputs[n] as Link, [...path, id]);
    }
    for (const [name, kind] of Object.entries(def.inputs?.hidden ?? {})) {
      lists[name] = [kind === 'PROMPT' ? st.prompt : kind === 'EXTRA_PNGINFO' ? st.extraPngInfo : kind === 'UNIQUE_ID' ? id : undefined];
    }
    const entry = await this.run(st, id, def, lists);
    st.inFlight.delete(id);
    st.results.set(id, entry);
    if (this.opts.cacheMode !== 'none') this.cache.set(key, entry);
    return entry;
  }

  private async linked(st: RunState, targetId: string, link: Link, path: string[]): Promise<unknown[]> {
    const src = String(link[0]);
    const entry = await this.ensure(st, src, path);
    const out = entry.outputs[link[1]];
    if (!out) {
      const def = this.registry.get(st.prompt[src].class_type);
      throw new NodeFailure(
        targetId,
        st.prompt[targetId].class_type,
        new Error(`input links to output ${link[1]} of node ${src} (${def?.name}), which has ${entry.outputs.length} outputs`),
        {},
      );
    }
    return out;
  }

  private context(st: RunState, id: string, classType: string): NodeContext {
    return {
      nodeId: id,
      classType,
      promptId: st.promptId,
      signal: st.signal,
      checkInterrupted: () => this.checkInterrupted(st),
      progress: (value: number, max: number, preview?: PreviewImage) => {
        this.checkInterrupted(st);
        st.emit({ type: 'progress', data: { value, max, prompt_id: st.promptId, node: id }, ...(preview ? { preview } : {}) });
      },
      prompt: st.prompt,
      extraPngInfo: st.extraPngInfo,
      paths: this.opts.paths,
      services: this.services,
      log: this.log,
    };
  }

  private async run(st: RunState, id: string, def: AnyNodeDefinition, lists: Record<string, unknown[] | undefined>): Promise<CacheEntry> {
    this.checkInterrupted(st);
    st.current = id;
    st.emit({ type: 'executing', data: { node: id, display_node: id, prompt_id: st.promptId } });
    const ctx = this.context(st, id, def.name);
    const t0 = performance.now();
    const calls: Record<string, unknown>[] = [];
    if (def.inputIsList) {
      const args: Record<string, unknown> = {};
      for (const [k, l] of Object.entries(lists)) if (l !== undefined) args[k] = l;
      calls.push(args);
    } else {
      const present = Object.entries(lists).filter((e): e is [string, unknown[]] => e[1] !== undefined);
      const n = present.length ? Math.max(...present.map(([, l]) => l.length)) : 1;
      if (present.some(([, l]) => l.length === 0)) calls.length = 0;
      else {
        for (let i = 0; i < n; i++) {
          const args: Record<string, unknown> = {};
          for (const [k, l] of present) args[k] = l[Math.min(i, l.length - 1)];
          calls.push(args);
        }
      }
    }
    const nOut = def.outputs.length;
    const outputs: unknown[][] = Array.from({ length: nOut }, () => []);
    let ui: UiOutput | undefined;
    for (const args of calls) {
      this.checkInterrupted(st);
      let r: unknown;
      try {
        r = await def.run(args, ctx);
      } catch (e) {
        throw new NodeFailure(id, def.name, e, args);
      }
      let result: unknown[] | undefined;
      if (isResultObject(r)) {
        result = r.result;
        if (r.ui) {
          ui ??= {};
          for (const [k, v] of Object.entries(r.ui)) ui[k] = [...(ui[k] ?? []), ...(v as unknown[])];
        }
      } else {
        result = r as unknown[] | undefined;
      }
      if (result === undefined || result === null) {
        if (nOut > 0) throw new NodeFailure(id, def.name, new Error(`node returned no outputs but declares ${nOut}`), args);
        continue;
      }
      if (!Array.isArray(result) || result.length !== nOut) {
        throw new NodeFailure(
          id,
          def.name,
          new Error(`node returned ${Array.isArray(result) ? result.length : typeof result} outputs but declares ${nOut}`),
          args,
        );
      }
      result.forEach((v, j) => {
        if (def.outputs[j].isList) {
          if (!Array.isArray(v)) throw new NodeFailure(id, def.name, new Error(`output ${j} is declared as a list but the node returned ${typeof v}`), args);
          outputs[j].push(...(v as unknown[]));
        } else {
          outputs[j].push(v);
        }
      });
    }
    const ms = performance.now() - t0;
    st.timings[id] = ms;
    st.executed.push(id);
    if (ui) {
      if (st.outputIds.has(id) || def.outputNode) st.outputs[id] = ui;
      st.emit({ type: 'executed', data: { node: id, display_node: id, output: ui, prompt_id: st.promptId } });
    }
    return { outputs, ui, bytes: estimateBytes([outputs, ui]) };
  }
}
