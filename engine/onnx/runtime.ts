import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from './graph.ts';

/**
 * Which ONNX Runtime execution provider runs the models, and how sessions are created.
 *
 * `auto` tries CUDA (only when its provider library was installed with
 * ONNXRUNTIME_NODE_INSTALL=cuda12 and a session actually starts on it), then WebGPU (bundled with
 * onnxruntime-node; needs a Vulkan GPU adapter, and refuses software rasterisers), then CPU. Each
 * probe creates a one-node session, so "installed but no GPU" falls through instead of failing later.
 */

export type DeviceChoice = 'auto' | 'cpu' | 'cuda' | 'webgpu';
export type Provider = 'cpu' | 'cuda' | 'webgpu';

export interface ProviderChoice {
  provider: Provider;
  /** Half precision on GPU providers, float32 on CPU. */
  dtype: 'float32' | 'float16';
  /** One line for the log: which provider and why the faster ones were skipped. */
  reason: string;
}

export interface RuntimeOptions {
  device?: DeviceChoice;
  /** Intra-op threads (0 = ORT's default: one per physical core). */
  threads?: number;
  /** GPU index for CUDA/WebGPU. */
  deviceId?: number;
  /** Whether the CPU provider pre-packs MatMul/Gemm weights at load (default `$WEFT_PREPACK`, else on; see prepackFromEnv). */
  prepack?: boolean;
}

function bindingDir(): string {
  const req = createRequire(import.meta.url);
  const main = req.resolve('onnxruntime-node');
  return join(dirname(main), '..', 'bin', 'napi-v6', process.platform, process.arch);
}

async function probe(provider: Provider, deviceId: number): Promise<string | undefined> {
  const g = new GraphBuilder('probe');
  const x = g.input('x', 'float32', [2]);
  g.output(g.op1('Add', [x, x]), 'y', 'float32', [2]);
  try {
    const s = await ort.InferenceSession.create(g.toBuffer(), { executionProviders: [epConfig(provider, deviceId)], logSeverityLevel: 4 });
    const r = await s.run({ x: new ort.Tensor('float32', new Float32Array([1, 2]), [2]) });
    await s.release();
    const y = r.y?.data;
    if (!(y instanceof Float32Array) || y[1] !== 4) return 'a test session returned a wrong result';
    return undefined;
  } catch (e) {
    return (e instanceof Error ? e.message : String(e)).split('\n')[0].slice(0, 200);
  }
}

function epConfig(provider: Provider, deviceId: number): ort.InferenceSession.ExecutionProviderConfig {
  if (provider === 'cuda') return { name: 'cuda', deviceId };
  if (provider === 'webgpu') return { name: 'webgpu' };
  return { name: 'cpu' };
}

const VULKAN_LOADERS = [
  '/usr/lib/x86_64-linux-gnu/libvulkan.so.1',
  '/usr/lib64/libvulkan.so.1',
  '/usr/lib/libvulkan.so.1',
  '/usr/lib/aarch64-linux-gnu/libvulkan.so.1',
];

/** Decides the provider once; `auto` falls through CUDA → WebGPU → CPU with the reasons kept. */
export async function chooseProvider(opts: RuntimeOptions = {}): Promise<ProviderChoice> {
  const device = opts.device ?? 'auto';
  const id = opts.deviceId ?? 0;
  const skipped: string[] = [];
  const tryCuda = async (): Promise<ProviderChoice | undefined> => {
    const lib = join(bindingDir(), 'libonnxruntime_providers_cuda.so');
    if (!existsSync(lib)) {
      skipped.push('CUDA provider not installed (reinstall with ONNXRUNTIME_NODE_INSTALL=cuda12)');
      return undefined;
    }
    const err = await probe('cuda', id);
    if (err) {
      skipped.push(`CUDA did not start: ${err}`);
      return undefined;
    }
    return { provider: 'cuda', dtype: 'float16', reason: `CUDA GPU ${id}, float16` };
  };
  const tryWebgpu = async (): Promise<ProviderChoice | undefined> => {
    if (process.platform === 'linux' && !VULKAN_LOADERS.some((f) => existsSync(f))) {
      skipped.push('WebGPU needs a Vulkan loader (libvulkan.so.1), none found');
      return undefined;
    }
    const err = await probe('webgpu', id);
    if (err) {
      skipped.push(`WebGPU has no usable adapter: ${err}`);
      return undefined;
    }
    return { provider: 'webgpu', dtype: 'float16', reason: 'WebGPU (Dawn/Vulkan), float16' };
  };
  if (device === 'cuda' || device === 'webgpu') {
    const c = device === 'cuda' ? await tryCuda() : await tryWebgpu();
    if (!c) throw new Error(`--device ${device} was asked for but cannot run: ${skipped.join('; ')}`);
    return c;
  }
  if (device === 'auto') {
    const c = (await tryCuda()) ?? (await tryWebgpu());
    if (c) return c;
  }
  const why = device === 'cpu' ? 'asked for' : skipped.join('; ');
  return { provider: 'cpu', dtype: 'float32', reason: `CPU, float32 (${why})` };
}

export function sessionOptions(choice: ProviderChoice, opts: RuntimeOptions = {}): ort.InferenceSession.SessionOptions {
  const o: ort.InferenceSession.SessionOptions = {
    executionProviders: [epConfig(choice.provider, opts.deviceId ?? 0)],
    graphOptimizationLevel: 'all',
    // The arena and memory patterns keep activation buffers between runs: a sampling loop reuses them.
    enableCpuMemArena: true,
    enableMemPattern: true,
    // The UNet's overridable control inputs make ORT warn on every load; errors still show.
    logSeverityLevel: 3,
  };
  o.intraOpNumThreads = opts.threads && opts.threads > 0 ? opts.threads : defaultThreads();
  // Idle pool threads sleep instead of spinning: the same SD1.5 step time (6.35/5.89 s against 6.31/6.10 s
  // spinning, same bits), and a browser, a server or other test workers on the same cores keep their CPU.
  const config: Record<string, string> = { 'intra_op.allow_spinning': '0' };
  if (choice.provider === 'cpu' && !(opts.prepack ?? prepackFromEnv())) config.disable_prepacking = '1';
  return withSessionConfig(o, config);
}

/**
 * `WEFT_PREPACK=0`: ORT's CPU provider leaves MatMul/Gemm weights as they are at load instead of
 * copying each into MLAS's panel layout in fresh memory (SDXL's UNet: 17–26 s of creation against
 * 1.3 s on the 2-core dev VM), and MLAS packs panels inside each call instead, which cost SDXL's UNet
 * 1.11× per call at 512² and 1.11–1.29× at 1024² there; its sums are blocked differently, so outputs differ
 * in the last bits (~1e-6 relative) from the default's. So it is opt-in, for few-step models and model
 * switching, and with it every 16-bit weight can stay 16-bit (resident-half.ts). Anything but 0/1 is
 * refused by name.
 */
export function prepackFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env.WEFT_PREPACK;
  if (v === undefined || v === '' || v === '1') return true;
  if (v === '0') return false;
  throw new Error(`WEFT_PREPACK=${v}: expected 0 or 1`);
}

/** `o` with ORT session config entries added to those it has (`extra.session`), so none set before is lost. */
export function withSessionConfig(
  o: ort.InferenceSession.SessionOptions,
  entries: Record<string, string>,
): ort.InferenceSession.SessionOptions {
  const extra = (o.extra ?? {}) as { session?: Record<string, string> };
  return { ...o, extra: { ...extra, session: { ...extra.session, ...entries } } };
}

/**
 * Intra-op threads when none are asked for: `WEFT_THREADS`, else every CPU this process may use.
 * ORT's own default ("physical cores") gave one thread on the 2-core AMD VM: its SD1.5 512² CFG step
 * took 9.68 s there against 6.05 s with two threads, with the same output bits.
 */
export function defaultThreads(env: NodeJS.ProcessEnv = process.env): number {
  const n = Number(env.WEFT_THREADS);
  return Number.isInteger(n) && n > 0 ? n : availableParallelism();
}
