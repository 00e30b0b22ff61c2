import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SafetensorsFile, assertNotPickle, f16ToF32, f32ToF16, writeSafetensors } from '../../engine/models/safetensors.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { silentLogger, type NodeContext } from '../../engine/registry/context.ts';
import { LoadLatent, SaveLatent } from '../../nodes/latent/latent-file.ts';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-st-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A file assembled by hand (independently of the writer): 8-byte length, JSON header, data. */
function raw(name: string, header: unknown, data: Buffer, lengthOverride?: bigint): string {
  const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lengthOverride ?? BigInt(h.length));
  const file = path.join(dir, name);
  fs.writeFileSync(file, Buffer.concat([len, h, data]));
  return file;
}

describe('safetensors reader', () => {
  it('reads F32, F16 and BF16 tensors as float32 (values computed by hand)', () => {
    const data = Buffer.alloc(8 + 4 + 4);
    data.writeFloatLE(1.5, 0);
    data.writeFloatLE(-2, 4);
    data.writeUInt16LE(0x3c00, 8); // f16 1.0
    data.writeUInt16LE(0xc500, 10); // f16 −5.0
    data.writeUInt16LE(0x3fc0, 12); // bf16 1.5
    data.writeUInt16LE(0x4049, 14); // bf16 3.140625
    const f = SafetensorsFile.open(
      raw('ok.safetensors', {
        __metadata__: { format: 'pt' },
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        h: { dtype: 'F16', shape: [2], data_offsets: [8, 12] },
        b: { dtype: 'BF16', shape: [1, 2], data_offsets: [12, 16] },
      }, data),
    );
    expect([...f.get('a')]).toEqual([1.5, -2]);
    expect([...f.get('h')]).toEqual([1, -5]);
    expect([...f.get('b')]).toEqual([1.5, 3.140625]);
    expect(f.shape('b')).toEqual([1, 2]);
    expect(f.metadata()).toEqual({ format: 'pt' });
    f.close();
  });

  it.each([
    ['too short', () => { const p = path.join(dir, 'short'); fs.writeFileSync(p, Buffer.alloc(5)); return p; }, /too short/],
    ['header longer than file', () => raw('long', '{}', Buffer.alloc(0), 1000n), /exceeds the file size/],
    ['huge claimed header', () => raw('huge', '{}', Buffer.alloc(0), 1n << 40n), /exceeds the 104857600-byte limit/],
    ['not JSON', () => raw('nojson', '{nope', Buffer.alloc(0)), /not valid UTF-8 JSON/],
    ['JSON array', () => raw('arr', '[1]', Buffer.alloc(0)), /not a JSON object/],
    ['bad dtype', () => raw('dtype', { x: { dtype: 'F8', shape: [1], data_offsets: [0, 1] } }, Buffer.alloc(1)), /tensor 'x': unsupported dtype "F8"/],
    ['bad shape', () => raw('shape', { x: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, Buffer.alloc(4)), /shape must be a list of non-negative integers/],
    ['length mismatch', () => raw('mismatch', { x: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, Buffer.alloc(8)), /8 bytes of data for shape \[3\] of F32 \(needs 12\)/],
    ['truncated data', () => raw('trunc', { x: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, Buffer.alloc(8)), /truncated/],
    ['overlap', () => raw('overlap', { x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, y: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, Buffer.alloc(12)), /overlap/],
    ['reversed offsets', () => raw('rev', { x: { dtype: 'F32', shape: [0], data_offsets: [8, 0] } }, Buffer.alloc(8)), /data_offsets/],
  ])('refuses a malformed file: %s', (_what, make, message) => {
    const file = make();
    expect(() => SafetensorsFile.open(file)).toThrow(message);
    expect(() => SafetensorsFile.open(file)).toThrow(file);
  });

  it('round-trips through the writer, F16 rounding to nearest even', () => {
    const file = path.join(dir, 'rt.safetensors');
    const x = Float32Array.from([0, 1, -2.5, 65504, 1e-7, 0.1]);
    writeSafetensors(file, [
      { name: 'x32', dtype: 'F32', shape: [2, 3], data: x },
      { name: 'x16', dtype: 'F16', shape: [6], data: () => x },
    ], { note: 'hi' });
    const f = SafetensorsFile.open(file);
    expect([...f.get('x32')]).toEqual([...x]);
    const h = f.get('x16');
    for (let i = 0; i < x.length; i++) expect(h[i]).toBe(f16ToF32(f32ToF16(x[i])));
    expect(h[5]).toBeCloseTo(0.0999755859375, 10); // nearest half to 0.1
    expect(f.metadata()).toEqual({ note: 'hi' });
    expect(f.contentHash()).toMatch(/^[0-9a-f]{64}$/);
    f.close();
  });

  it('refuses pickles by extension and by magic bytes', () => {
    const ckpt = path.join(dir, 'model.ckpt');
    fs.writeFileSync(ckpt, 'PK\x03\x04');
    expect(() => assertNotPickle(ckpt)).toThrow(/never loaded.*convert it to \.safetensors/);
    const disguised = path.join(dir, 'model.safetensors');
    fs.writeFileSync(disguised, Buffer.from([0x80, 0x02, 0x7d]));
    expect(() => assertNotPickle(disguised)).toThrow(/pickled/);
  });
});

describe('SaveLatent / LoadLatent', () => {
  it("writes ComfyUI's .latent format and reads it back; legacy files are unscaled", async () => {
    const paths = new FolderPaths({ baseDir: dir });
    const ctx = { paths, nodeId: '1', classType: 'SaveLatent', promptId: 'p', signal: new AbortController().signal, checkInterrupted: () => {}, progress: () => {}, prompt: {}, extraPngInfo: {}, services: {}, log: silentLogger } as NodeContext;
    const samples = { shape: [1, 4, 2, 2], data: Float32Array.from({ length: 16 }, (_, i) => i / 10) };
    const r = (await SaveLatent.run({ samples: { samples }, filename_prefix: 'latents/test', prompt: { a: 1 }, extra_pnginfo: { workflow: { b: 2 } } }, ctx)) as { ui: { latents: { filename: string; subfolder: string }[] } };
    expect(r.ui.latents).toEqual([{ filename: 'test_00001_.latent', subfolder: 'latents', type: 'output' }]);
    const file = path.join(paths.outputDir, 'latents', 'test_00001_.latent');
    const f = SafetensorsFile.open(file);
    expect(f.names().sort()).toEqual(['latent_format_version_0', 'latent_tensor']);
    expect(f.metadata()).toEqual({ prompt: '{"a":1}', workflow: '{"b":2}' });
    f.close();
    fs.mkdirSync(paths.inputDir, { recursive: true });
    fs.copyFileSync(file, path.join(paths.inputDir, 'x.latent'));
    const [back] = (await LoadLatent.run({ latent: 'x.latent' }, ctx)) as [{ samples: { shape: number[]; data: Float32Array } }];
    expect(back.samples.shape).toEqual([1, 4, 2, 2]);
    expect([...back.samples.data]).toEqual([...samples.data]);
    writeSafetensors(path.join(paths.inputDir, 'old.latent'), [{ name: 'latent_tensor', dtype: 'F32', shape: [1, 1, 1, 1], data: Float32Array.of(0.18215) }]);
    const [old] = (await LoadLatent.run({ latent: 'old.latent' }, ctx)) as [{ samples: { data: Float32Array } }];
    expect(old.samples.data[0]).toBeCloseTo(1, 6);
  });
});
