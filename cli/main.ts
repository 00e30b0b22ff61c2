import fs from 'node:fs';
import path from 'node:path';
import { makeDemoAdapters } from '../engine/models/generate/demo-adapters.ts';
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { convertWorkflowToPrompt } from '../engine/graph/convert.ts';
import { loadWorkflowFile } from '../engine/graph/load.ts';
import type { ApiPrompt } from '../engine/graph/prompt.ts';
import { formatNodeErrors, validatePrompt } from '../engine/graph/validate.ts';
import { consoleLogger, silentLogger, type Logger } from '../engine/core/log.ts';
import type { ObjectInfo } from '../engine/registry/registry.ts';
import { applySetOptions, UsageError } from './args.ts';
import { createEnvironment, REPO_ROOT, type EnvironmentOptions } from './environment.ts';
import { ProgressBar } from './progress.ts';
import { CACHE_HELP, cmdCache } from './cache.ts';
import { keptCopiesWritten } from '../engine/onnx/kept-expansions.ts';
import { resolveCacheDir, resolveCacheLimit } from '../engine/onnx/cache-dir.ts';
import { resolveMemoryBudget } from '../engine/models/runtime/memory-budget.ts';

const HELP = `weft — a node-graph workflow engine for Stable Diffusion (ComfyUI-compatible)

Usage:
  weft run <workflow.json|image.png> [options]   run a workflow (UI or API format, or a PNG that carries one)
  weft convert <workflow.json|image.png>         print the API prompt a UI workflow converts to
  weft validate <workflow.json|image.png>        print ComfyUI's node_errors JSON without running
  weft serve [--port 8188] [--listen 127.0.0.1]  start the ComfyUI-compatible server and editor
  weft worker --queue redis://HOST:PORT[/DB]     run prompts from a scale-out queue (docs/scale-out.md)
  weft make-model tiny|sd15 [--out FILE] [--seed N] [--force]  generate a random-weight SD1 checkpoint (tiny: tests/demo, with a
                                                   demo LoRA, LoHa, embedding, ControlNet, T2I-Adapter and upscalers; sd15: benchmarks)
  weft make-model sd2-tiny [--v] [--out FILE] [--seed N] [--force]
                                                   a tiny random SD2 checkpoint (512-base ε; --v: 768-v, v prediction)
  weft make-model sdxl-tiny|sdxl-refiner-tiny|sdxl [--out FILE] [--seed N] [--force]
                                                   random SDXL checkpoints (tiny base with a demo LoRA, tiny refiner: tests/demo;
                                                   sdxl: full-size SDXL 1.0 base shape in float16, for benchmarks)
  weft make-model sdxl-tiny --variant playground|cosxl|vpred [--out FILE]
                                                   the tiny SDXL with a variant's marker keys: Playground v2.5 (EDM),
                                                   CosXL (v, continuous σ 0.002..120), v-prediction with zero terminal SNR
  weft make-model lora|loha --checkpoint FILE --out FILE [--rank N] [--seed N]
                                                   a random adapter over every attention and conv layer of a checkpoint
  weft make-model controlnet|t2i-adapter --checkpoint FILE --out FILE [--seed N]
                                                   a random fp16 ControlNet / T2I-Adapter of a checkpoint's UNet structure
  weft make-model esrgan|compact|realesrgan-x4plus|realesr-general-x4v3 [--scale N] [--out FILE] [--seed N] [--force]
                                                   a random upscaler in models/upscale_models (tiny ESRGAN ×1/2/4/8/16, tiny
                                                   SRVGGNetCompact ×N, default ×4; full-size Real-ESRGAN x4plus and
                                                   realesr-general-x4v3 for benchmarks)
  weft make-model annotators [--out DIR] [--seed N]
                                                   random-weight annotator ONNX files of the real signatures in models/annotators
                                                   (DWPose pair, depth_anything_v2_vits.onnx, dpt_hybrid-midas.onnx, ControlNetHED,
                                                   sk_model, sk_model2 as safetensors)
  weft make-model detector|segm-detector [--out FILE] [--seed N]
                                                   a random YOLO-layout ONNX detector / segmenter (ultralytics export layout and
                                                   metadata) in models/ultralytics/bbox or segm; \`tiny\` also writes the
                                                   deterministic bbox/weft-tiny-face.onnx and segm/weft-tiny-face-seg.onnx
${CACHE_HELP}

Options:
  --base DIR                 base folder for models/, input/, output/, temp/, user/ (default: current folder)
  --models DIR               models folder in ComfyUI's layout (checkpoints/, loras/, vae/, embeddings/, ...)
  --extra-model-paths FILE   extra_model_paths.yaml in ComfyUI's format (repeatable)
  --input DIR, --output DIR, --temp DIR
  --custom-nodes DIR         extra custom node folder (repeatable); --disable-custom-nodes to load none
  --device auto|cpu|cuda|webgpu
  --cache-dir DIR            built-model cache (default: $WEFT_CACHE_DIR, else $XDG_CACHE_HOME/weft or ~/.cache/weft)
  --cache-limit SIZE         keep the cache under SIZE (e.g. 20G; default: $WEFT_CACHE_LIMIT, else no limit),
                             removing the least recently used builds after each new build
  --memory-budget SIZE       models kept loaded plus tiled work (e.g. 6G; default: $WEFT_MEMORY_BUDGET, else 60% of
                             RAM): a tiled VAE pass reserves its tiles' memory from it, releasing idle models first
  --lora-mode branch|merge   plain LoRAs as graph branches (fast to apply and re-weight; default) or
                             merged into the weights as ComfyUI does (no per-step cost)
  --set NODE_ID.INPUT=VALUE  override an input before running (repeatable)
  --json                     print one final JSON line {prompt_id, status, outputs, executed, cached, timings_ms}
  (environment) WEFT_CACHE_STORAGE=compact|float32: 16-bit cache widened at load (default, ~1x the
                             checkpoint on disk) or float32 (~2.4x, less widening); WEFT_KEEP_EXPANDED=SIZE: float32
                             copies of recently loaded parts kept in the cache for fast loads (default 8G, 0: none);
                             WEFT_WEIGHTS=half: CPU only,
                             convolution weights stay 16-bit in memory (same bits, ~8% per 512² step);
                             WEFT_THREADS=N: ONNX Runtime's threads per session (default: every CPU this process may use);
                             GLIBC_TUNABLES=glibc.malloc.hugetlb=1: huge pages everywhere, more RSS (a first build's
                             optimisation uses them already, in a child process; WEFT_OPTIMIZE_IN_CHILD=0: in-process);
                             WEFT_NCHWC=0: ORT lays out convolutions itself and its optimised graphs are saved (default:
                             Weft does ORT's NCHWc layout at each load, the same bits, nothing saved);
                             WEFT_PREPACK=0: CPU only, MatMul weights are not repacked at load (SDXL loads in seconds,
                             but each step is 1.1-1.3x as long and outputs differ by float32 rounding; with
                             WEFT_WEIGHTS=half every weight stays 16-bit in memory)

Server options (weft serve; see docs/server.md):
  --allowed-hosts H,H        host names clients may use besides the listen address ('*' = any)
  --auth-token-file FILE     require the token in FILE (or the WEFT_AUTH_TOKEN environment variable;
                             --auth-token TOKEN works too but shows in ps)
  --max-image-pixels N       largest image decoded (default 67108864 = 8192²)
  --node-timeout SECONDS     limit for one custom node call (default 600; 0 = none; built-ins: none)
  --prompt-timeout SECONDS   limit for a whole prompt (default none)
  --max-crashes N            a prompt running at N process deaths is failed, not replayed (default 2)
  --quiet                    no log lines

Scale-out (weft serve --queue / weft worker; see docs/scale-out.md):
  --queue redis://[user:pass@]HOST:PORT[/DB]   prompts go to BullMQ on Redis (rediss:// for TLS; the password
                             may come from WEFT_REDIS_PASSWORD instead of the URL)
  --max-history N            history entries kept in Redis (default 10000)
  --concurrency N            weft worker: prompts run at once, each with its own models (default 1)
  --upload-to URL            weft worker: send outputs to this front (/internal/upload, needs its auth token)
                             instead of writing them to a shared --output folder
  --stall-timeout SECONDS    weft worker: a dead worker's prompt is retried after 1-2x this (default 30)
  --max-attempts N           weft worker: a prompt whose worker died N times is failed (default 3)
  --affinity-wait SECONDS    weft worker: a prompt routed to another live worker that has its checkpoint loaded
                             is left to it for this long after it was queued (default 2; 0 turns it off)
`;

const OPTIONS = {
  base: { type: 'string' },
  models: { type: 'string' },
  'extra-model-paths': { type: 'string', multiple: true },
  input: { type: 'string' },
  output: { type: 'string' },
  temp: { type: 'string' },
  user: { type: 'string' },
  'custom-nodes': { type: 'string', multiple: true },
  'disable-custom-nodes': { type: 'boolean' },
  device: { type: 'string' },
  'lora-mode': { type: 'string' },
  set: { type: 'string', multiple: true },
  json: { type: 'boolean' },
  quiet: { type: 'boolean' },
  port: { type: 'string' },
  listen: { type: 'string' },
  'auth-token': { type: 'string' },
  'auth-token-file': { type: 'string' },
  'allowed-hosts': { type: 'string', multiple: true },
  'max-image-pixels': { type: 'string' },
  'node-timeout': { type: 'string' },
  'prompt-timeout': { type: 'string' },
  'max-crashes': { type: 'string' },
  'enable-cors-header': { type: 'string' },
  queue: { type: 'string' },
  'max-history': { type: 'string' },
  concurrency: { type: 'string' },
  'upload-to': { type: 'string' },
  'stall-timeout': { type: 'string' },
  'max-attempts': { type: 'string' },
  'affinity-wait': { type: 'string' },
  out: { type: 'string' },
  seed: { type: 'string' },
  force: { type: 'boolean' },
  v: { type: 'boolean' },
  variant: { type: 'string' },
  checkpoint: { type: 'string' },
  rank: { type: 'string' },
  scale: { type: 'string' },
  'cache-dir': { type: 'string' },
  'cache-limit': { type: 'string' },
  'memory-budget': { type: 'string' },
  all: { type: 'boolean' },
  'older-than': { type: 'string' },
  'max-size': { type: 'string' },
  'missing-source': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

function envOptions(v: Values, log: Logger): EnvironmentOptions {
  const device = v.device ?? 'auto';
  if (!['auto', 'cpu', 'cuda', 'webgpu'].includes(device)) {
    throw new UsageError(`--device ${device}: expected auto, cpu, cuda or webgpu`);
  }
  const loraMode = v['lora-mode'] ?? 'branch';
  if (loraMode !== 'branch' && loraMode !== 'merge') throw new UsageError(`--lora-mode ${loraMode}: expected branch or merge`);
  const extra = [...(v['extra-model-paths'] ?? [])];
  return {
    baseDir: v.base,
    modelsDir: v.models,
    inputDir: v.input,
    outputDir: v.output,
    tempDir: v.temp,
    userDir: v.user,
    extraModelPaths: extra,
    customNodesDirs: [path.join(REPO_ROOT, 'custom_nodes'), ...(v['custom-nodes'] ?? [])],
    disableCustomNodes: v['disable-custom-nodes'],
    device: device as EnvironmentOptions['device'],
    loraMode,
    log,
    modelCacheDir: resolveCacheDir(v['cache-dir']),
    modelCacheLimitBytes: cacheLimit(v['cache-limit']),
    memoryBudgetBytes: memoryBudget(v['memory-budget']),
  };
}

function memoryBudget(flag: string | undefined): number {
  try {
    return resolveMemoryBudget(flag);
  } catch (e) {
    throw new UsageError(`${flag === undefined ? 'WEFT_MEMORY_BUDGET' : '--memory-budget'}: ${(e as Error).message}`);
  }
}

function cacheLimit(flag: string | undefined): number | undefined {
  try {
    return resolveCacheLimit(flag);
  } catch (e) {
    throw new UsageError(`${flag === undefined ? 'WEFT_CACHE_LIMIT' : '--cache-limit'}: ${(e as Error).message}`);
  }
}

/** The API prompt of a file: an API prompt as is, a UI workflow (or PNG) converted as ComfyUI's frontend does. */
export function promptFromFile(file: string, objectInfo: ObjectInfo): { prompt: ApiPrompt; workflow?: Record<string, unknown> } {
  const loaded = loadWorkflowFile(file);
  if (loaded.workflow) {
    const conv = convertWorkflowToPrompt(loaded.workflow, objectInfo);
    if (conv.missing.length) {
      const lines = conv.missing.map((m) => `  ${m.class_type} (used by node ${m.node_ids.join(', ')})`);
      throw new UsageError(`${file}: the workflow uses node classes Weft does not have:\n${lines.join('\n')}`);
    }
    return { prompt: conv.prompt, workflow: loaded.workflow };
  }
  if (loaded.prompt) return { prompt: loaded.prompt };
  throw new UsageError(`${file}: holds neither a workflow nor an API prompt`);
}

async function cmdRun(file: string | undefined, v: Values): Promise<number> {
  if (!file) throw new UsageError('weft run: name a workflow file (.json or .png)');
  const log = v.quiet || v.json ? silentLogger : consoleLogger;
  let bar: ProgressBar | undefined;
  const env = await createEnvironment({ ...envOptions(v, log), onBuildProgress: (p) => bar?.onBuild(p) });
  const objectInfo = env.registry.objectInfo({ paths: env.paths });
  const { prompt: raw, workflow } = promptFromFile(path.resolve(file), objectInfo);
  const prompt = applySetOptions(raw, v.set ?? []);
  const validation = await validatePrompt(prompt, env.registry, { paths: env.paths });
  if (!validation.ok) {
    if (v.json) {
      console.log(JSON.stringify({ prompt_id: null, status: 'invalid', error: validation.error, node_errors: validation.node_errors }));
    }
    console.error(formatNodeErrors(validation));
    return 1;
  }
  if (Object.keys(validation.node_errors).length) console.error(formatNodeErrors(validation));
  const promptId = randomUUID();
  const controller = new AbortController();
  const onSigint = (): void => controller.abort();
  process.once('SIGINT', onSigint);
  bar = new ProgressBar(process.stderr, (id) => validation.prompt[id]?.class_type ?? '?');
  const result = await env.executor.execute(validation.prompt, {
    promptId,
    extraData: workflow ? { extra_pnginfo: { workflow } } : {},
    outputs: validation.outputs,
    signal: controller.signal,
    onEvent: (e) => bar.onEvent(e),
  });
  process.off('SIGINT', onSigint);
  if (v.json) {
    console.log(
      JSON.stringify({
        prompt_id: promptId,
        status: result.status,
        outputs: result.outputs,
        executed: result.executed,
        cached: result.cached,
        timings_ms: result.timingsMs,
        ...(result.error ? { error: result.error } : {}),
      }),
    );
  } else {
    for (const [node, ui] of Object.entries(result.outputs)) {
      for (const img of (ui.images ?? []) as { filename: string; subfolder: string; type: string }[]) {
        const dir = env.paths.typeDir(img.type as 'output' | 'temp' | 'input');
        console.log(`node ${node}: ${path.join(dir, img.subfolder, img.filename)}`);
      }
    }
    if (result.error) {
      console.error(`error in node ${result.error.node_id} (${result.error.node_type}): ${result.error.exception_message}`);
    }
    const total = Object.values(result.timingsMs).reduce((a, b) => a + b, 0);
    console.error(`${result.status}: ${result.executed.length} executed, ${result.cached.length} cached, ${(total / 1000).toFixed(2)} s`);
  }
  return result.status === 'success' ? 0 : result.status === 'interrupted' ? 130 : 2;
}

async function cmdConvert(file: string | undefined, v: Values): Promise<number> {
  if (!file) throw new UsageError('weft convert: name a workflow file (.json or .png)');
  const env = await createEnvironment(envOptions(v, silentLogger));
  const objectInfo = env.registry.objectInfo({ paths: env.paths });
  const loaded = loadWorkflowFile(path.resolve(file));
  if (!loaded.workflow) {
    if (!loaded.prompt) throw new UsageError(`${file}: holds neither a workflow nor an API prompt`);
    console.log(JSON.stringify(loaded.prompt, null, 2));
    return 0;
  }
  const conv = convertWorkflowToPrompt(loaded.workflow, objectInfo);
  for (const w of conv.warnings) console.error(`warning: ${w}`);
  console.log(JSON.stringify(conv.prompt, null, 2));
  if (conv.missing.length) {
    for (const m of conv.missing) console.error(`missing node class ${m.class_type} (node ${m.node_ids.join(', ')})`);
    return 1;
  }
  return 0;
}

async function cmdValidate(file: string | undefined, v: Values): Promise<number> {
  if (!file) throw new UsageError('weft validate: name a workflow file (.json or .png)');
  const env = await createEnvironment(envOptions(v, silentLogger));
  const objectInfo = env.registry.objectInfo({ paths: env.paths });
  const loaded = loadWorkflowFile(path.resolve(file));
  let prompt: unknown = loaded.prompt;
  if (loaded.workflow) prompt = convertWorkflowToPrompt(loaded.workflow, objectInfo).prompt;
  const r = await validatePrompt(applySetOptions((prompt ?? {}) as ApiPrompt, v.set ?? []), env.registry, { paths: env.paths });
  console.log(JSON.stringify(r.ok ? { node_errors: r.node_errors } : { error: r.error, node_errors: r.node_errors }, null, 2));
  return r.ok && Object.keys(r.node_errors).length === 0 ? 0 : 1;
}

async function cmdServe(v: Values): Promise<number> {
  const { startServer } = await import('../server/server.ts');
  const { WorkerHost } = await import('../server/worker-host.ts');
  const { serveWorkerOptions } = await import('./serve-worker.ts');
  const { setMaxImagePixels } = await import('../engine/image/io.ts');
  const num = (name: string, value: string | undefined, fallback: number): number => {
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isFinite(n) || n < 0) throw new UsageError(`--${name} ${value}: expected a non-negative number`);
    return n;
  };
  const port = v.port === undefined ? 8188 : Number(v.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port ${v.port}: not a port number`);
  const maxPixels = num('max-image-pixels', v['max-image-pixels'], 8192 * 8192);
  setMaxImagePixels(maxPixels);
  const authToken = readAuthToken(v);
  const env = await createEnvironment(envOptions(v, consoleLogger));
  const scaleOut = v.queue
    ? await (
        await import('../server/queue-redis/front.ts')
      ).RedisFront.open({ url: v.queue, maxHistory: num('max-history', v['max-history'], 10_000) || 10_000, log: env.log })
    : undefined;
  const host = new WorkerHost({
    setup: {
      module: new URL('./serve-worker.ts', import.meta.url).href,
      exportName: 'createServeExecutor',
      options: serveWorkerOptions(envOptions(v, consoleLogger), {
        customNodeTimeoutMs: num('node-timeout', v['node-timeout'], 600) * 1000,
        maxImagePixels: maxPixels,
      }),
    },
    log: env.log,
    promptTimeoutMs: num('prompt-timeout', v['prompt-timeout'], 0) * 1000 || undefined,
  });
  const server = await startServer({
    port,
    listen: v.listen ?? '127.0.0.1',
    paths: env.paths,
    registry: env.registry,
    executionHost: host,
    authToken,
    allowedHosts: (v['allowed-hosts'] ?? [])
      .flatMap((h) => h.split(','))
      .map((h) => h.trim())
      .filter(Boolean),
    enableCorsHeader: v['enable-cors-header'],
    maxImagePixels: maxPixels,
    maxCrashes: num('max-crashes', v['max-crashes'], 2),
    log: env.log,
    workflowTemplatesDir: path.join(REPO_ROOT, 'workflows'),
    customNodes: env.customNodes,
    scaleOut,
  });
  // Start the worker now so the first prompt does not wait for custom nodes to load (with --queue, workers run prompts).
  if (!scaleOut) host.start().catch((e: Error) => env.log.error(`execution worker: ${e.message}`));
  env.log.info(`weft: serving on ${server.url}${authToken ? ' (auth token required; open the editor as /?token=…)' : ''}`);
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await server.close();
  return 0;
}

/** `weft worker --queue URL`: runs prompts from the scale-out queue until SIGINT/SIGTERM (a second one stops at once). */
async function cmdWorker(v: Values): Promise<number> {
  if (!v.queue) throw new UsageError('weft worker: --queue redis://HOST:PORT is required');
  const { startQueueWorker } = await import('../server/queue-redis/worker.ts');
  const { serveWorkerOptions } = await import('./serve-worker.ts');
  const count = (name: string, value: string | undefined, fallback: number): number => {
    const n = value === undefined ? fallback : Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} ${value}: expected a positive number`);
    return n;
  };
  const affinityWait = (value: string | undefined): number => {
    const n = value === undefined ? 2 : Number(value);
    if (!Number.isFinite(n) || n < 0) throw new UsageError(`--affinity-wait ${value}: expected a number of seconds, 0 or more`);
    return n;
  };
  const log = v.quiet ? silentLogger : consoleLogger;
  const env = await createEnvironment(envOptions(v, log));
  const uploadTo = v['upload-to'] ? { url: v['upload-to'], token: readAuthToken(v) } : undefined;
  const worker = await startQueueWorker({
    url: v.queue,
    paths: env.paths,
    setup: {
      module: new URL('./serve-worker.ts', import.meta.url).href,
      exportName: 'createServeExecutor',
      options: serveWorkerOptions(envOptions(v, log), {
        customNodeTimeoutMs: (v['node-timeout'] === undefined ? 600 : Number(v['node-timeout'])) * 1000,
        quiet: v.quiet,
      }),
    },
    concurrency: Math.floor(count('concurrency', v.concurrency, 1)),
    lockMs: count('stall-timeout', v['stall-timeout'], 30) * 1000,
    maxAttempts: Math.floor(count('max-attempts', v['max-attempts'], 3)),
    affinityWaitMs: affinityWait(v['affinity-wait']) * 1000,
    maxHistory: Math.floor(count('max-history', v['max-history'], 10_000)),
    promptTimeoutMs: v['prompt-timeout'] ? Number(v['prompt-timeout']) * 1000 : undefined,
    uploadTo,
    log,
  });
  const force = await new Promise<boolean>((resolve) => {
    const stop = (): void => {
      log.info('weft worker: finishing the running prompt (signal again to stop now; it is then retried elsewhere)');
      resolve(false);
      const again = (): void => process.exit(130);
      process.once('SIGINT', again);
      process.once('SIGTERM', again);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await worker.close(force);
  return 0;
}

/** --auth-token-file, WEFT_AUTH_TOKEN, or --auth-token (visible in ps, so the others come first). */
function readAuthToken(v: Values): string | undefined {
  const file = v['auth-token-file'];
  if (file) {
    const t = fs.readFileSync(path.resolve(file), 'utf8').trim();
    if (!t) throw new UsageError(`--auth-token-file ${file}: the file is empty`);
    return t;
  }
  return process.env.WEFT_AUTH_TOKEN?.trim() || v['auth-token'] || undefined;
}

async function cmdMakeModel(kind: string | undefined, v: Values): Promise<number> {
  const { makeTinyCheckpoint, makeFullSd15Checkpoint } = await import('../engine/models/make-model.ts');
  const seed = v.seed === undefined ? 0 : Number(v.seed);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new UsageError(`--seed ${v.seed}: expected a non-negative integer`);
  const models = path.resolve(v.models ?? path.join(v.base ?? '.', 'models'));
  if (kind === 'tiny' || kind === 'sd15') {
    const name = kind === 'tiny' ? 'weft-tiny-sd1.safetensors' : 'weft-random-sd15.safetensors';
    const out = path.resolve(v.out ?? path.join(models, 'checkpoints', name));
    if (fs.existsSync(out) && !v.force) {
      console.log(`${out} (exists; --force to regenerate)`);
      return 0;
    }
    if (kind === 'tiny') {
      await makeTinyCheckpoint(out, { seed });
      if (!v.out) {
        makeDemoAdapters(out, models, seed);
        const { makeDemoControlNet } = await import('../engine/models/controlnet/generate.ts');
        makeDemoControlNet(out, models, seed);
        const { makeDemoAdapter } = await import('../engine/models/controlnet/generate-adapter.ts');
        makeDemoAdapter(out, models, seed);
        const { makeDemoUpscalers } = await import('../engine/models/upscale/generate.ts');
        makeDemoUpscalers(models, seed);
        const { makeTinyFaceDetectors } = await import('../engine/models/detect/generate.ts');
        makeTinyFaceDetectors(path.join(models, 'ultralytics'));
      }
    } else await makeFullSd15Checkpoint(out, { seed, dtype: 'F16' });
    console.log(out);
    return 0;
  }
  if (kind === 'sd2-tiny') {
    const out = path.resolve(v.out ?? path.join(models, 'checkpoints', v.v ? 'weft-tiny-sd2-v.safetensors' : 'weft-tiny-sd2.safetensors'));
    if (fs.existsSync(out) && !v.force) {
      console.log(`${out} (exists; --force to regenerate)`);
      return 0;
    }
    const { makeTinySd2Checkpoint } = await import('../engine/models/generate/sd2-tiny.ts');
    makeTinySd2Checkpoint(out, { seed, prediction: v.v ? 'v_prediction' : 'eps' });
    console.log(out);
    return 0;
  }
  if (kind === 'sdxl-tiny' || kind === 'sdxl-refiner-tiny' || kind === 'sdxl') {
    const names = { 'sdxl-tiny': 'weft-tiny-sdxl', 'sdxl-refiner-tiny': 'weft-tiny-sdxl-refiner', sdxl: 'weft-random-sdxl' } as const;
    const out = path.resolve(v.out ?? path.join(models, 'checkpoints', `${names[kind]}.safetensors`));
    if (fs.existsSync(out) && !v.force) {
      console.log(`${out} (exists; --force to regenerate)`);
      return 0;
    }
    const mm = await import('../engine/models/make-model.ts');
    const { SDXL_VARIANT_MARKERS } = await import('../engine/models/families/sdxl/make.ts');
    const variant = v.variant;
    if (variant !== undefined && (kind !== 'sdxl-tiny' || !Object.hasOwn(SDXL_VARIANT_MARKERS, variant))) {
      throw new UsageError(`--variant ${variant}: expected playground, cosxl or vpred, with sdxl-tiny and --out`);
    }
    if (variant !== undefined && !v.out)
      throw new UsageError(`--variant ${variant}: give --out (the default name is the plain tiny SDXL's)`);
    const markers = variant === undefined ? undefined : SDXL_VARIANT_MARKERS[variant as keyof typeof SDXL_VARIANT_MARKERS];
    if (kind === 'sdxl') await mm.makeFullSdxlCheckpoint(out, { seed });
    else await mm.makeTinySdxlCheckpoint(out, { seed, kind: kind === 'sdxl-tiny' ? 'base' : 'refiner', markers });
    console.log(out);
    if (kind === 'sdxl-tiny' && !v.out) {
      const { makeAdapter } = await import('../engine/models/generate/demo-adapters.ts');
      const lora = path.join(models, 'loras', 'weft-tiny-sdxl-lora.safetensors');
      makeAdapter(out, lora, { kind: 'lora', rank: 4, seed: seed + 1, scope: 'attention', textEncoder: false });
      console.log(lora);
      const { makeDemoSdxlAdapter } = await import('../engine/models/controlnet/generate-adapter.ts');
      console.log(makeDemoSdxlAdapter(out, models, seed));
    }
    return 0;
  }
  if (kind === 'lora' || kind === 'loha') {
    if (!v.checkpoint || !v.out) throw new UsageError(`weft make-model ${kind}: --checkpoint and --out are required`);
    const rank = Number(v.rank ?? 32);
    if (!Number.isSafeInteger(rank) || rank < 1 || rank > 1024) throw new UsageError(`--rank ${v.rank}: expected an integer 1..1024`);
    const { makeAdapter } = await import('../engine/models/generate/demo-adapters.ts');
    const n = makeAdapter(path.resolve(v.checkpoint), path.resolve(v.out), {
      kind,
      rank,
      seed,
      scope: 'attention+conv',
      textEncoder: true,
      dtype: 'F16',
    });
    console.log(`${path.resolve(v.out)} (${n} weights)`);
    return 0;
  }
  if (kind === 'annotators') {
    const gen = await import('../engine/models/annotators/generate.ts');
    const dir = path.resolve(v.out ?? path.join(models, 'annotators'));
    for (const f of [...gen.makeRandomDwpose(dir, seed), ...gen.makeRandomDepth(dir, seed + 2)]) console.log(f);
    for (const [name, make, s] of [
      ['ControlNetHED.safetensors', gen.makeRandomHed, seed + 4],
      ['sk_model.safetensors', gen.makeRandomLineart, seed + 5],
      ['sk_model2.safetensors', gen.makeRandomLineart, seed + 6],
    ] as const) {
      make(path.join(dir, name), s);
      console.log(path.join(dir, name));
    }
    return 0;
  }
  if (kind === 'detector' || kind === 'segm-detector') {
    const { makeRandomYolo } = await import('../engine/models/detect/generate.ts');
    const segment = kind === 'segm-detector';
    const rel = segment ? path.join('segm', 'weft-random-yolo-seg.onnx') : path.join('bbox', 'weft-random-yolo.onnx');
    console.log(makeRandomYolo(path.resolve(v.out ?? path.join(models, 'ultralytics', rel)), { seed, segment }));
    return 0;
  }
  if (kind === 'esrgan' || kind === 'compact' || kind === 'realesrgan-x4plus' || kind === 'realesr-general-x4v3') {
    const up = await import('../engine/models/upscale/generate.ts');
    const scale = v.scale === undefined ? 4 : Number(v.scale);
    const names = {
      esrgan: `weft-tiny-esrgan-x${scale}`,
      compact: `weft-tiny-compact-x${scale}`,
      'realesrgan-x4plus': 'weft-random-RealESRGAN_x4plus',
      'realesr-general-x4v3': 'weft-random-realesr-general-x4v3',
    };
    const out = path.resolve(v.out ?? path.join(models, 'upscale_models', `${names[kind]}.safetensors`));
    if (fs.existsSync(out) && !v.force) {
      console.log(`${out} (exists; --force to regenerate)`);
      return 0;
    }
    if (!Number.isInteger(scale) || scale < 1)
      throw new UsageError(`weft make-model ${kind}: --scale must be a positive integer, got ${v.scale}`);
    const arch = {
      esrgan: () => up.esrganArch({ ...up.TINY_ESRGAN, upsamples: up.esrganUpsamples(scale) }),
      compact: () => up.compactArch({ ...up.TINY_COMPACT, scale }),
      'realesrgan-x4plus': () => up.esrganArch(up.REALESRGAN_X4PLUS),
      'realesr-general-x4v3': () => up.compactArch(up.REALESR_GENERAL_X4V3),
    }[kind]();
    up.makeUpscaleFile(out, arch, { seed, dtype: kind.startsWith('realesr') ? 'F16' : 'F32' });
    console.log(out);
    return 0;
  }
  if (kind === 'controlnet' || kind === 't2i-adapter') {
    if (!v.checkpoint || !v.out) throw new UsageError(`weft make-model ${kind}: --checkpoint and --out are required`);
    const { SafetensorsFile } = await import('../engine/formats/safetensors.ts');
    const { detectCheckpoint } = await import('../engine/models/families/sd1/detect.ts');
    const unet = detectCheckpoint(SafetensorsFile.open(path.resolve(v.checkpoint))).unet;
    if (kind === 'controlnet') {
      const { makeControlNetFile } = await import('../engine/models/controlnet/generate.ts');
      makeControlNetFile(path.resolve(v.out), { unet, hintChannels: 3 }, { seed, dtype: 'F16' });
    } else {
      const { adapterConfigFor, makeAdapterFile } = await import('../engine/models/controlnet/generate-adapter.ts');
      makeAdapterFile(path.resolve(v.out), adapterConfigFor(unet), { seed, dtype: 'F16' });
    }
    console.log(path.resolve(v.out));
    return 0;
  }
  throw new UsageError(
    `weft make-model: expected 'tiny', 'sd15', 'sd2-tiny', 'sdxl-tiny', 'sdxl-refiner-tiny', 'sdxl', 'lora', 'loha', 'annotators', 'controlnet', 't2i-adapter', 'esrgan', 'compact', 'realesrgan-x4plus', 'realesr-general-x4v3', 'detector' or 'segm-detector', got ${kind ?? 'nothing'}`,
  );
}

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${HELP}`);
    return 64;
  }
  const { values, positionals } = parsed;
  const [cmd, arg] = positionals;
  if (values.help || !cmd) {
    console.log(HELP);
    return cmd || values.help ? 0 : 64;
  }
  try {
    switch (cmd) {
      case 'run':
        return await cmdRun(arg, values);
      case 'convert':
        return await cmdConvert(arg, values);
      case 'validate':
        return await cmdValidate(arg, values);
      case 'serve':
        return await cmdServe(values);
      case 'worker':
        return await cmdWorker(values);
      case 'make-model':
        return await cmdMakeModel(arg, values);
      case 'cache':
        return cmdCache(arg, {
          cacheDir: values['cache-dir'],
          all: values.all,
          olderThan: values['older-than'],
          maxSize: values['max-size'],
          missingSource: values['missing-source'],
          json: values.json,
        });
      default:
        throw new UsageError(`unknown command '${cmd}'`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`weft: ${e.message}`);
      return 64;
    }
    console.error(`weft: ${(e as Error).message}`);
    return 1;
  }
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('cli/main.ts')) {
  mainThenExit();
}

/** main, then exit with its code once the float32 copies its loads started are written (kept-expansions.ts). */
export function mainThenExit(): void {
  main(process.argv.slice(2)).then(
    async (code) => {
      await keptCopiesWritten();
      process.exit(code);
    },
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
