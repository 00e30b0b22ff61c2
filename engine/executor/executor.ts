import { isLink, unwrapValue, type ApiPrompt } from '../graph/prompt.ts';
import type { FolderPaths } from '../paths/folders.ts';
import { type EngineServices, type NodeContext } from '../registry/context.ts';
import { InterruptedError } from '../core/errors.ts';
import { type PreviewImage } from '../core/preview.ts';
import { silentLogger, type Logger } from '../core/log.ts';
import type { NodeRegistry } from '../registry/registry.ts';
import type { UiOutput } from '../registry/types.ts';
import { OutputCache, estimateBytes, type CacheEntry } from './cache.ts';
import type { ExecuteOptions, ExecutionErrorData, ExecutionEvent, ExecutionResult } from './events.ts';
import { computeFingerprints } from './fingerprint.ts';
import { formatInputs } from './format.ts';
import { PromptFault, abortReason, nonFiniteLatent, settleOrAbort } from './guard.ts';
import { MAX_UI_DEPTH, unserialisable } from './json-bounds.ts';
import { ResultCollector, callArgs, type InputLists } from './lists.ts';
import { PlanError, inputSpec, planGraph, type GraphPlan, type PlannedNode } from './plan.ts';
import { ExecutionList } from './schedule.ts';
import { computeSignatures, type Signatures } from './signature.ts';

export interface ExecutorOptions {
  paths: FolderPaths;
  services?: EngineServices;
  log?: Logger;
  /** Bytes of node outputs kept between prompts (default 4 GiB). */
  cacheBudgetBytes?: number;
  /** 'none' re-runs every node every time (ComfyUI --cache-none). */
  cacheMode?: 'lru' | 'none';
  /**
   * Milliseconds a node may take before its prompt fails, by node; undefined = no limit. The
   * default gives custom nodes (module `custom_nodes.*`) CUSTOM_NODE_TIMEOUT_MS and built-ins none,
   * since a sampler on a slow machine may legitimately take hours.
   */
  nodeTimeoutMs?: (classType: string, module: string | undefined) => number | undefined;
}

/** Default limit for one custom node call (10 minutes). */
export const CUSTOM_NODE_TIMEOUT_MS = 10 * 60 * 1000;

const defaultNodeTimeout = (_classType: string, module: string | undefined): number | undefined =>
  module?.startsWith('custom_nodes.') ? CUSTOM_NODE_TIMEOUT_MS : undefined;

export type CacheStats = { entries: number; bytes: number; budgetBytes: number; hits: number; misses: number };

/** A failure attributed to one node, with the inputs it was called with. */
class NodeFailure extends Error {
  constructor(
    readonly nodeId: string,
    readonly classType: string,
    readonly error: unknown,
    readonly inputs: InputLists = {},
  ) {
    super(error instanceof Error ? error.message : String(error));
  }
}

/** State of one prompt's execution. */
interface Run {
  readonly prompt: ApiPrompt;
  readonly promptId: string;
  readonly signal: AbortSignal;
  readonly extraPngInfo: Record<string, unknown>;
  readonly emit: (e: ExecutionEvent) => void;
  readonly outputIds: ReadonlySet<string>;
  plan?: GraphPlan;
  sigs?: Signatures;
  list?: ExecutionList;
  readonly results: Map<string, CacheEntry>;
  /** Nodes looked up in the cache without a hit (they cannot turn into hits mid-prompt). */
  readonly missed: Set<string>;
  readonly executed: string[];
  cached: string[];
  readonly timings: Record<string, number>;
  readonly outputs: Record<string, UiOutput>;
  current?: string;
}

const STATUS_EVENTS = new Set<ExecutionEvent['type']>([
  'execution_start',
  'execution_cached',
  'execution_success',
  'execution_error',
  'execution_interrupted',
]);

/**
 * Runs API prompts: only nodes reachable from the outputs, each once, in dependency order, reusing
 * cached outputs whose signature is unchanged. Node failures and interrupts end the prompt with an
 * event and a status; the executor itself is always ready for the next prompt. Prompts given
 * concurrently run one after the other.
 */
export class Executor {
  private readonly cache: OutputCache;
  private readonly log: Logger;
  private readonly services: EngineServices;
  private readonly useCache: boolean;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly registry: NodeRegistry,
    private readonly opts: ExecutorOptions,
  ) {
    this.cache = new OutputCache(opts.cacheBudgetBytes ?? 4 * 1024 ** 3);
    this.log = opts.log ?? silentLogger;
    this.services = opts.services ?? {};
    this.useCache = opts.cacheMode !== 'none';
  }

  clearCache(): void {
    this.cache.clear();
  }

  cacheStats(): CacheStats {
    const c = this.cache;
    return { entries: c.size, bytes: c.bytes, budgetBytes: c.budgetBytes, hits: c.hits, misses: c.misses };
  }

  /** Never throws for node errors or interrupts: they end in `status` and an event. */
  execute(prompt: ApiPrompt, opts: ExecuteOptions): Promise<ExecutionResult> {
    const result = this.tail.then(() => this.executeNow(prompt, opts));
    this.tail = result.catch(() => undefined);
    return result;
  }

  private async executeNow(prompt: ApiPrompt, opts: ExecuteOptions): Promise<ExecutionResult> {
    const messages: [string, unknown][] = [];
    const listener = opts.onEvent;
    const emit = (e: ExecutionEvent): void => {
      if (STATUS_EVENTS.has(e.type)) messages.push([e.type, e.data]);
      try {
        listener?.(e);
      } catch (err) {
        this.log.error(`execution event listener failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    };
    const run: Run = {
      prompt,
      promptId: opts.promptId,
      signal: opts.signal ?? new AbortController().signal,
      extraPngInfo: opts.extraData?.extra_pnginfo ?? {},
      emit,
      outputIds: new Set(opts.outputs ?? Object.keys(prompt).filter((id) => this.registry.get(prompt[id]?.class_type)?.outputNode)),
      results: new Map(),
      missed: new Set(),
      executed: [],
      cached: [],
      timings: {},
      outputs: {},
    };
    emit({ type: 'execution_start', data: { prompt_id: run.promptId, timestamp: Date.now() } });
    let status: ExecutionResult['status'] = 'success';
    let error: ExecutionErrorData | undefined;
    try {
      await this.prepare(run);
      emit({ type: 'execution_cached', data: { nodes: run.cached, prompt_id: run.promptId, timestamp: Date.now() } });
      await this.loop(run);
      emit({ type: 'execution_success', data: { prompt_id: run.promptId, timestamp: Date.now() } });
    } catch (e) {
      const failure = e instanceof NodeFailure ? e : undefined;
      const cause = failure ? failure.error : e;
      const nodeId = failure?.nodeId ?? (e instanceof PlanError ? e.nodeId : (run.current ?? ''));
      const nodeType = failure?.classType ?? (e instanceof PlanError ? e.classType : (prompt[nodeId]?.class_type ?? ''));
      const fault = cause instanceof PromptFault ? cause : run.signal.reason instanceof PromptFault ? run.signal.reason : undefined;
      if (!fault && (cause instanceof InterruptedError || run.signal.aborted)) {
        status = 'interrupted';
        this.log.info(`prompt ${run.promptId} interrupted at node ${nodeId} (${nodeType})`);
        emit({
          type: 'execution_interrupted',
          data: { prompt_id: run.promptId, node_id: nodeId, node_type: nodeType, executed: [...run.executed], timestamp: Date.now() },
        });
      } else {
        status = 'error';
        const err = fault ?? (cause instanceof Error ? cause : new Error(String(cause)));
        error = {
          prompt_id: run.promptId,
          node_id: nodeId,
          node_type: nodeType,
          executed: [...run.executed],
          exception_message: err.message,
          exception_type: err.name || 'Error',
          traceback: traceback(err),
          current_inputs: failure ? formatInputs(failure.inputs) : {},
          current_outputs: [...run.results.keys()],
          timestamp: Date.now(),
        };
        this.log.error(`node ${nodeId} (${nodeType}) failed: ${err.message}`);
        emit({ type: 'execution_error', data: error });
      }
    } finally {
      this.cache.unpinAll();
    }
    emit({ type: 'executing', data: { node: null, prompt_id: run.promptId } });
    return {
      promptId: run.promptId,
      status,
      outputs: run.outputs,
      executed: run.executed,
      cached: run.cached,
      timingsMs: run.timings,
      error,
      messages,
    };
  }

  /** Plan, fingerprints, signatures; lists the prompt's cache hits and pins what this prompt may read. */
  private async prepare(run: Run): Promise<void> {
    const plan = planGraph(run.prompt, [...run.outputIds], (c) => this.registry.get(c));
    run.plan = plan;
    const sigs = computeSignatures(plan, await computeFingerprints(plan, { paths: this.opts.paths }, this.log));
    run.sigs = sigs;
    if (!this.useCache) return;
    // ComfyUI lists every prompt node with a hit, also those the outputs will not need.
    for (const id of Object.keys(run.prompt)) {
      const key = sigs.keys.get(id);
      if (key !== undefined && this.cache.peek(key)) run.cached.push(id);
    }
    const pins: string[] = [];
    for (const id of plan.reachable) {
      const key = sigs.keys.get(id);
      if (key !== undefined) pins.push(key);
    }
    this.cache.pin(pins);
  }

  private async loop(run: Run): Promise<void> {
    const plan = run.plan!;
    const list = new ExecutionList(
      (id) => plan.nodes.get(id)!.order,
      (id) => this.isDone(run, id),
      (id) => strongSources(plan.nodes.get(id)!),
    );
    run.list = list;
    for (const id of run.outputIds) list.add(id);
    for (let id = list.next(); id !== undefined; id = list.next()) await this.attempt(run, plan.nodes.get(id)!);
    const stuck = list.pendingIds();
    if (stuck.length) {
      // The plan rejects cycles, so this is a scheduler bug; say so rather than report success.
      const p = plan.nodes.get(stuck[0])!;
      throw new NodeFailure(p.id, p.node.class_type, new Error(`node ${p.id} never became ready (waiting nodes: ${stuck.join(', ')})`));
    }
  }

  /** Whether `id`'s outputs are available; a cache hit is taken into this prompt's results here. */
  private isDone(run: Run, id: string): boolean {
    if (run.results.has(id)) return true;
    if (!this.useCache || run.missed.has(id)) return false;
    const key = run.sigs!.keys.get(id);
    const hit = key === undefined ? undefined : this.cache.get(key);
    if (!hit) {
      run.missed.add(id);
      return false;
    }
    this.takeHit(run, id, hit);
    return true;
  }

  private takeHit(run: Run, id: string, hit: CacheEntry): void {
    run.results.set(id, hit);
    if (hit.ui) run.outputs[id] = hit.ui;
    // ComfyUI re-sends a cached output node's UI (null when it had none) so clients show it again.
    if (run.outputIds.has(id)) {
      run.emit({ type: 'executed', data: { node: id, display_node: id, output: hit.ui ?? null, prompt_id: run.promptId } });
    }
  }

  /**
   * Tries to run one ready node. A node with lazy inputs may first ask for some of them; then it
   * goes back to waiting and is attempted again when they are done (ComfyUI sends `executing` again).
   */
  private async attempt(run: Run, p: PlannedNode): Promise<void> {
    const id = p.id;
    const def = p.def!;
    run.current = id;
    this.checkInterrupted(run);
    // A node identical to one that ran earlier in this prompt finds that result now (as in ComfyUI).
    const key = run.sigs!.keys.get(id)!;
    if (this.useCache && this.cache.peek(key)) {
      this.takeHit(run, id, this.cache.get(key)!);
      run.list!.complete(id);
      return;
    }
    run.emit({ type: 'executing', data: { node: id, display_node: id, prompt_id: run.promptId } });
    const ctx = this.context(run, id, def.name);
    const t0 = performance.now();
    const lists: InputLists = {};
    const unevaluated = this.gather(run, p, lists);
    while (unevaluated.size) {
      const needed = await this.lazyNeeds(run, p, lists, unevaluated, ctx);
      if (!needed.length) break;
      for (const name of needed) {
        const link = p.links.find((l) => l.name === name)!;
        if (!run.list!.require(link.src, id)) {
          lists[name] = this.slot(run, p, link.name, link.src, link.slot);
          unevaluated.delete(name);
        }
      }
      if (run.list!.isBlocked(id)) {
        run.timings[id] = (run.timings[id] ?? 0) + (performance.now() - t0);
        return;
      }
    }
    // Lazy inputs the node did not ask for reach it as undefined.
    for (const name of unevaluated) lists[name] = [undefined];
    const collected = new ResultCollector(def);
    for (const args of callArgs(def.inputIsList, lists)) {
      this.checkInterrupted(run);
      let r: unknown;
      try {
        r = await settleOrAbort(
          Promise.resolve().then(() => def.run(args, ctx)),
          run.signal,
          this.nodeTimeout(def.name, def.module),
          `node ${id} (${def.name})`,
        );
        collected.add(r);
      } catch (e) {
        throw new NodeFailure(id, def.name, e, lists);
      }
    }
    // Whatever goes to history and to clients must be JSON: a node's BigInt or cycle fails here, named.
    const bad = collected.ui === undefined ? undefined : unserialisable(collected.ui, MAX_UI_DEPTH);
    if (bad)
      throw new NodeFailure(
        id,
        def.name,
        new Error(`node ${id} (${def.name}) returned a UI output that cannot be sent as JSON: ${bad}`),
        lists,
      );
    const nonFinite = nonFiniteLatent(collected.outputs);
    if (nonFinite)
      this.log.warn(
        `node ${id} (${def.name}): ${nonFinite} is a latent with NaN or infinite values (the image will be black; check the model and LoRA strengths)`,
      );
    const entry: CacheEntry = { outputs: collected.outputs, ui: collected.ui, bytes: 0 };
    run.timings[id] = (run.timings[id] ?? 0) + (performance.now() - t0);
    run.executed.push(id);
    run.results.set(id, entry);
    if (this.useCache && !run.sigs!.volatile.has(id)) {
      entry.bytes = estimateBytes([entry.outputs, entry.ui]);
      this.cache.set(key, entry);
    }
    run.list!.complete(id);
    if (entry.ui) {
      run.outputs[id] = entry.ui;
      run.emit({ type: 'executed', data: { node: id, display_node: id, output: entry.ui, prompt_id: run.promptId } });
    }
  }

  /** Fills `lists` with constants, finished links and hidden inputs; returns the lazy inputs not evaluated. */
  private gather(run: Run, p: PlannedNode, lists: InputLists): Set<string> {
    const def = p.def!;
    const inputs = p.node.inputs;
    for (const name in inputs) {
      const v = inputs[name];
      // ComfyUI passes constants only for declared inputs, but links whatever their name.
      if (!isLink(v) && inputSpec(def, name)) lists[name] = [unwrapValue(v)];
    }
    const unevaluated = new Set<string>();
    for (const link of p.links) {
      if (inputSpec(def, link.name)?.rawLink) lists[link.name] = [[link.src, link.slot]];
      else if (!link.lazy || this.isDone(run, link.src)) lists[link.name] = this.slot(run, p, link.name, link.src, link.slot);
      else unevaluated.add(link.name);
    }
    const hidden = def.inputs?.hidden;
    if (hidden) {
      for (const name in hidden) {
        const kind = hidden[name];
        lists[name] = [
          kind === 'PROMPT' ? run.prompt : kind === 'EXTRA_PNGINFO' ? run.extraPngInfo : kind === 'UNIQUE_ID' ? p.id : undefined,
        ];
      }
    }
    return unevaluated;
  }

  private slot(run: Run, p: PlannedNode, name: string, src: string, slot: number): unknown[] {
    const entry = run.results.get(src);
    if (!entry) throw new NodeFailure(p.id, p.node.class_type, new Error(`input '${name}': node ${src} has no result (scheduler bug)`));
    const out = entry.outputs[slot];
    if (out === undefined) {
      const n = entry.outputs.length;
      throw new NodeFailure(
        p.id,
        p.node.class_type,
        new Error(
          `input '${name}' links to output ${slot} of node ${src} (${run.prompt[src].class_type}), which has ${n} output${n === 1 ? '' : 's'}`,
        ),
      );
    }
    return out;
  }

  /**
   * The unevaluated lazy inputs the node needs now. `checkLazyStatus` is mapped over lists like
   * `run`, unevaluated inputs given as undefined; without it every linked lazy input is needed (as
   * ComfyUI's V3 default does).
   */
  private async lazyNeeds(
    run: Run,
    p: PlannedNode,
    lists: InputLists,
    unevaluated: ReadonlySet<string>,
    ctx: NodeContext,
  ): Promise<string[]> {
    const def = p.def!;
    if (!def.checkLazyStatus) return [...unevaluated];
    const view: InputLists = { ...lists };
    for (const name of unevaluated) view[name] = [undefined];
    const needed = new Set<string>();
    for (const args of callArgs(def.inputIsList, view)) {
      this.checkInterrupted(run);
      let names: unknown;
      try {
        names = await settleOrAbort(
          Promise.resolve().then(() => def.checkLazyStatus!(args, ctx)),
          run.signal,
          this.nodeTimeout(def.name, def.module),
          `node ${p.id} (${def.name})`,
        );
      } catch (e) {
        throw new NodeFailure(p.id, def.name, e, lists);
      }
      if (names === undefined || names === null) continue;
      if (!Array.isArray(names)) {
        throw new NodeFailure(
          p.id,
          def.name,
          new Error(`checkLazyStatus returned ${typeof names} instead of an array of input names`),
          lists,
        );
      }
      for (const n of names) if (typeof n === 'string' && unevaluated.has(n)) needed.add(n);
    }
    return [...needed];
  }

  private checkInterrupted(run: Run): void {
    if (run.signal.aborted) throw abortReason(run.signal);
  }

  /** The time limit for one call of a node class (for a watchdog outside the executor's thread). */
  timeoutFor(classType: string): number | undefined {
    return this.nodeTimeout(classType, this.registry.get(classType)?.module);
  }

  /**
   * The limit for a call of `classType`. Built-in nodes get none, also those that show a ComfyUI
   * package's `custom_nodes.*` module for compatibility (TiledDiffusion's VAE, UltimateSDUpscale, the
   * detailers): the limit guards against a user's package hanging, and those run for as long as their
   * images take (a 2048² tiled VAE encode took over 600 s on 2 cores).
   */
  private nodeTimeout(classType: string, module: string | undefined): number | undefined {
    if (this.registry.isBuiltin(classType)) return undefined;
    return (this.opts.nodeTimeoutMs ?? defaultNodeTimeout)(classType, module);
  }

  private context(run: Run, id: string, classType: string): NodeContext {
    return {
      nodeId: id,
      classType,
      promptId: run.promptId,
      signal: run.signal,
      checkInterrupted: () => this.checkInterrupted(run),
      progress: (value: number, max: number, preview?: PreviewImage) => {
        this.checkInterrupted(run);
        run.emit({ type: 'progress', data: { value, max, prompt_id: run.promptId, node: id }, ...(preview ? { preview } : {}) });
      },
      prompt: run.prompt,
      extraPngInfo: run.extraPngInfo,
      paths: this.opts.paths,
      services: this.services,
      log: this.log,
    };
  }
}

/** Sources a node waits for before its first attempt: every link except lazy ones. */
function strongSources(p: PlannedNode): string[] {
  const out: string[] = [];
  for (const l of p.links) if (!l.lazy) out.push(l.src);
  return out;
}

function traceback(err: Error): string[] {
  const lines = (err.stack ?? '').split('\n');
  // The stack starts with "Name: message", which exception_type/message already carry.
  const start = lines.findIndex((l) => /^\s+at /.test(l));
  return (start < 0 ? [] : lines.slice(start))
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(0, 50);
}
