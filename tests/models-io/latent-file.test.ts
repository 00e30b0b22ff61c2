import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Latent } from '../../engine/core/tensor.ts';
import { SafetensorsFile, writeSafetensors } from '../../engine/formats/safetensors.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { type NodeContext } from '../../engine/registry/context.ts';
import { silentLogger } from '../../engine/core/log.ts';
import { LoadLatent, SaveLatent, latentFiles, nodes } from '../../nodes/latent/latent-file.ts';

let base: string;
let paths: FolderPaths;
let ctx: NodeContext;
beforeAll(() => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-latent-'));
  paths = new FolderPaths({ baseDir: base });
  fs.mkdirSync(paths.inputDir, { recursive: true });
  ctx = {
    paths,
    nodeId: '1',
    classType: 'SaveLatent',
    promptId: 'p',
    signal: new AbortController().signal,
    checkInterrupted: () => {},
    progress: () => {},
    prompt: {},
    extraPngInfo: {},
    services: {},
    log: silentLogger,
  };
});
afterAll(() => fs.rmSync(base, { recursive: true, force: true }));

type SaveResult = { result: [Latent]; ui: { latents: { filename: string; subfolder: string; type: string }[] } };
const save = async (samples: Latent, prefix: string, prompt?: unknown, extra?: unknown) =>
  (await SaveLatent.run(
    { samples, filename_prefix: prefix, prompt: prompt as Record<string, unknown>, extra_pnginfo: extra as Record<string, unknown> },
    ctx,
  )) as SaveResult;
const load = async (name: string) => ((await LoadLatent.run({ latent: name }, ctx)) as [Latent])[0];

const latent = (shape: number[], f: (i: number) => number): Latent => ({
  samples: { shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => f(i)) },
});

describe('SaveLatent / LoadLatent', () => {
  it("declare ComfyUI's classes and inputs", () => {
    expect(nodes.map((n) => n.name)).toEqual(['SaveLatent', 'LoadLatent']);
    expect(Object.keys(SaveLatent.inputs?.required ?? {})).toEqual(['samples', 'filename_prefix']);
    expect((SaveLatent.inputs?.required?.filename_prefix as { default?: unknown } | undefined)?.default).toBe('latents/ComfyUI');
    expect(SaveLatent.outputNode).toBe(true);
    expect(Object.keys(LoadLatent.inputs?.required ?? {})).toEqual(['latent']);
  });

  it("writes ComfyUI's .latent format: latent_tensor, the version marker, prompt and workflow as Python JSON", async () => {
    const samples = latent([1, 4, 2, 3], (i) => i / 10 - 1);
    const r = await save(
      samples,
      'latents/test',
      { '3': { class_type: 'KSampler', inputs: { cfg: 8.5, seed: 5 } } },
      { workflow: { nodes: [], note: 'é' } },
    );
    expect(r.ui.latents).toEqual([{ filename: 'test_00001_.latent', subfolder: 'latents', type: 'output' }]);
    expect(r.result[0]).toBe(samples);
    const f = SafetensorsFile.open(path.join(paths.outputDir, 'latents', 'test_00001_.latent'));
    expect(f.names().sort()).toEqual(['latent_format_version_0', 'latent_tensor']);
    expect(f.dtype('latent_tensor')).toBe('F32');
    expect(f.shape('latent_tensor')).toEqual([1, 4, 2, 3]);
    expect([...f.get('latent_tensor')]).toEqual([...samples.samples.data]);
    expect(f.shape('latent_format_version_0')).toEqual([0]);
    // json.dumps: ", " and ": " separators, non-ASCII escaped.
    expect(f.metadata()).toEqual({
      prompt: '{"3": {"class_type": "KSampler", "inputs": {"cfg": 8.5, "seed": 5}}}',
      workflow: '{"nodes": [], "note": "\\u00e9"}',
    });
    f.close();
  });

  it('counts up from the highest existing file and never overwrites one', async () => {
    const samples = latent([1, 4, 1, 1], () => 0);
    const dir = path.join(paths.outputDir, 'count');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'x_00007_.latent'), 'keep');
    expect((await save(samples, 'count/x')).ui.latents[0].filename).toBe('x_00008_.latent');
    expect((await save(samples, 'count/x')).ui.latents[0].filename).toBe('x_00009_.latent');
    expect(fs.readFileSync(path.join(dir, 'x_00007_.latent'), 'utf8')).toBe('keep');
    // Empty prompt metadata when the prompt is absent, as ComfyUI writes it.
    const f = SafetensorsFile.open(path.join(dir, 'x_00009_.latent'));
    expect(f.metadata()).toEqual({ prompt: '' });
    f.close();
    await expect(save(samples, '../escape')).rejects.toThrow(/refused path/);
  });

  it('reads a saved file back exactly, and unscales files written before the format marker', async () => {
    const samples = latent([2, 4, 3, 2], (i) => Math.sin(i));
    const r = await save(samples, 'rt');
    fs.copyFileSync(path.join(paths.outputDir, r.ui.latents[0].filename), path.join(paths.inputDir, 'rt.latent'));
    const back = await load('rt.latent');
    expect(back.samples.shape).toEqual([2, 4, 3, 2]);
    expect([...back.samples.data]).toEqual([...samples.samples.data]);
    // From the output folder through the annotated name.
    expect((await load(`${r.ui.latents[0].filename} [output]`)).samples.data).toEqual(samples.samples.data);
    writeSafetensors(path.join(paths.inputDir, 'old.latent'), [
      { name: 'latent_tensor', dtype: 'F32', shape: [1, 1, 1, 2], data: [0.18215, -0.3643] },
    ]);
    const old = await load('old.latent');
    expect(old.samples.data[0]).toBeCloseTo(1, 6);
    expect(old.samples.data[1]).toBeCloseTo(-2, 6);
    writeSafetensors(path.join(paths.inputDir, 'half.latent'), [
      { name: 'latent_tensor', dtype: 'F16', shape: [1, 1, 1, 2], data: [0.5, -1.25] },
      { name: 'latent_format_version_0', dtype: 'F32', shape: [0], data: [] },
    ]);
    expect([...(await load('half.latent')).samples.data]).toEqual([0.5, -1.25]);
  });

  it('refuses files that are not latents with a clear error', async () => {
    writeSafetensors(path.join(paths.inputDir, 'other.latent'), [{ name: 'x', dtype: 'F32', shape: [1], data: [1] }]);
    await expect(load('other.latent')).rejects.toThrow("other.latent: no 'latent_tensor' in this file (tensors: x)");
    writeSafetensors(path.join(paths.inputDir, 'video.latent'), [
      { name: 'latent_tensor', dtype: 'F32', shape: [1, 16, 2, 1, 1], data: new Float32Array(32) },
    ]);
    await expect(load('video.latent')).rejects.toThrow('video.latent: latent_tensor has shape [1, 16, 2, 1, 1], expected [B, C, H, W]');
    fs.writeFileSync(path.join(paths.inputDir, 'junk.latent'), 'not a safetensors file at all');
    await expect(load('junk.latent')).rejects.toThrow(/junk\.latent: header length/);
  });

  it('lists *.latent directly in input/ (case-sensitive, sorted), fingerprints by SHA-256, validates existence', async () => {
    fs.mkdirSync(path.join(paths.inputDir, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(paths.inputDir, 'sub', 'deep.latent'), '');
    fs.writeFileSync(path.join(paths.inputDir, 'UPPER.LATENT'), '');
    fs.mkdirSync(path.join(paths.inputDir, 'dir.latent'), { recursive: true });
    const listed = latentFiles(ctx);
    expect(listed).toEqual([...listed].sort());
    expect(listed).toContain('rt.latent');
    expect(listed).toContain('old.latent');
    expect(listed).not.toContain('sub/deep.latent');
    expect(listed).not.toContain('UPPER.LATENT');
    expect(listed).not.toContain('dir.latent');
    const file = path.join(paths.inputDir, 'rt.latent');
    expect(await LoadLatent.fingerprint!({ latent: 'rt.latent' }, ctx)).toBe(
      createHash('sha256').update(fs.readFileSync(file)).digest('hex'),
    );
    expect(await LoadLatent.validateInputs!({ latent: 'rt.latent' }, {}, ctx)).toBe(true);
    expect(await LoadLatent.validateInputs!({ latent: 'gone.latent' }, {}, ctx)).toBe('Invalid latent file: gone.latent');
  });
});
