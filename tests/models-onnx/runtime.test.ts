import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chooseProvider, defaultThreads, sessionOptions } from '../../engine/onnx/runtime.ts';

/**
 * Provider choice on a machine without a GPU (this one and CI): `auto` falls back to the CPU and says
 * why for each GPU provider; asking for a GPU provider explicitly fails with the reason instead of
 * silently running on the CPU.
 */
const require = createRequire(import.meta.url);
const binding = join(dirname(require.resolve('onnxruntime-node')), '..', 'bin', 'napi-v6', process.platform, process.arch);
const cudaInstalled = existsSync(join(binding, 'libonnxruntime_providers_cuda.so'));

describe('execution provider choice', () => {
  it('cpu when asked for, float32', async () => {
    const c = await chooseProvider({ device: 'cpu' });
    expect(c).toEqual({ provider: 'cpu', dtype: 'float32', reason: 'CPU, float32 (asked for)' });
  });

  it.runIf(!cudaInstalled)('auto falls back to the CPU with one reason per GPU provider', async () => {
    const c = await chooseProvider({ device: 'auto' });
    if (c.provider !== 'cpu') return expect.unreachable(`a GPU provider answered here: ${c.reason}`);
    expect(c.dtype).toBe('float32');
    expect(c.reason).toMatch(/^CPU, float32 \(/);
    expect(c.reason).toContain('CUDA provider not installed (reinstall with ONNXRUNTIME_NODE_INSTALL=cuda12)');
    expect(c.reason).toMatch(/WebGPU (needs a Vulkan loader|has no usable adapter)/);
  });

  it.runIf(!cudaInstalled)('an explicit GPU provider that cannot run is an error naming why', async () => {
    await expect(chooseProvider({ device: 'cuda' })).rejects.toThrow(
      /--device cuda was asked for but cannot run: CUDA provider not installed/,
    );
    await expect(chooseProvider({ device: 'webgpu' })).rejects.toThrow(/--device webgpu was asked for but cannot run: WebGPU/);
  });

  it('session options keep the arena and memory patterns, and use every CPU unless threads are given', () => {
    const cpu = { provider: 'cpu' as const, dtype: 'float32' as const, reason: '' };
    const o = sessionOptions(cpu);
    expect(o.enableCpuMemArena).toBe(true);
    expect(o.enableMemPattern).toBe(true);
    // ORT's own default gave one thread on a 2-core VM: the count is always set.
    expect(o.intraOpNumThreads).toBe(defaultThreads());
    expect(defaultThreads({})).toBe(availableParallelism());
    expect(defaultThreads({ WEFT_THREADS: '3' })).toBe(3);
    expect(defaultThreads({ WEFT_THREADS: 'x' })).toBe(availableParallelism());
    expect(sessionOptions(cpu, { threads: 2 }).intraOpNumThreads).toBe(2);
    expect(JSON.stringify(o.executionProviders)).toContain('cpu');
  });
});
