import {
  existsSync,
  mkdtempSync,
  openSync,
  closeSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  utimesSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import { createBuiltSession } from '../../engine/models/runtime/sessions.ts';
import { choosePacking, expandHalfWeights, expandHalfWeightsParallel, type Expanded } from '../../engine/onnx/expand-half.ts';
import { packedLength, packPanels, PREPACKED_JSON, readPrepacked } from '../../engine/onnx/prepacked.ts';
import { build, collectingLog, cpu, outputOf } from './packed-graph.ts';

const { onnx } = onnxProto;
const { lines, log } = collectingLog();

async function outputOfFile(file: string): Promise<Buffer> {
  return outputOf(await ort.InferenceSession.create(file, { graphOptimizationLevel: 'disabled', logSeverityLevel: 3 }));
}

const weightsOf = (x: Expanded): string => join(x.file, '..', 'weights.bin');

function prepackedEntry(x: Expanded, name: string): { offset: number; length: number } | undefined {
  const t = onnx.ModelProto.decode(readFileSync(x.file)).graph!.initializer!.find((i) => i.name === name);
  const e = t?.externalData?.find((d) => d.key?.startsWith('prepacked'));
  if (!e?.value) return undefined;
  const [offset, length] = e.value.split('|')[1].split(';').map(Number);
  return { offset, length };
}

describe('ORT’s packed MatMul/Gemm weights written at load (prepacked.ts)', () => {
  const root = mkdtempSync(join(tmpdir(), 'weft-prepacked-'));
  let referenceRun: Promise<Buffer> | undefined;
  // The float32 build as ORT packs it itself at load: what every other path must give, bit for bit (built on first use).
  const reference = (): Promise<Buffer> =>
    (referenceRun ??= createBuiltSession(build(join(root, 'float32'), false), cpu, { log }).then(outputOf));

  it('records ORT’s packing once, then writes the packed form beside each tensor: the float32 build’s outputs, bit for bit', async () => {
    const file = build(join(root, 'half'), true);
    const dir = join(root, 'half');
    const want = await reference();
    // First load: builds, saves the optimised graph and records ORT's packing from the same save. Later loads use it.
    expect(Buffer.compare(await outputOf(await createBuiltSession(file, cpu, { log, optimizeInChild: false })), want)).toBe(0);
    expect(readPrepacked(dir)).toBeDefined();
    for (let i = 0; i < 2; i++) expect(Buffer.compare(await outputOf(await createBuiltSession(file, cpu, { log })), want)).toBe(0);
    const record = readPrepacked(dir)!;
    expect(record).toBeDefined();
    expect(Object.keys(record.tensors).sort()).toEqual(['out.weight.T', 'proj.weight.T']);
    expect(record.tensors['proj.weight.T'].length).toBeGreaterThanOrEqual(packedLength(300, 40) * 4);
    // Nothing of the packed bytes is kept in the cache: only the record.
    expect(readdirSync(dir).filter((f) => f.startsWith('prepack'))).toEqual([PREPACKED_JSON]);
    expect(statSync(join(dir, PREPACKED_JSON)).size).toBeLessThan(2048);

    // The expanded file holds packPanels of the tensor where ORT's entry says, and ORT reads it from
    // there: a packed value changed in the file changes the output.
    // An explicit scratch folder: the packed copies are written wherever it is (the automatic choice writes them only in /dev/shm).
    const x = (await expandHalfWeightsParallel(join(dir, 'optimized.onnx'), { packed: record, scratchRoot: tmpdir() }))!;
    const at = prepackedEntry(x, 'proj.weight.T')!;
    const plainAt = Number(
      onnx.ModelProto.decode(readFileSync(x.file))
        .graph!.initializer!.find((i) => i.name === 'proj.weight.T')!
        .externalData!.find((e) => e.key === 'offset')!.value,
    );
    const bytes = readFileSync(weightsOf(x));
    const b = new Float32Array(bytes.buffer.slice(bytes.byteOffset + plainAt, bytes.byteOffset + plainAt + 300 * 40 * 4));
    const packed = new Float32Array(at.length / 4);
    packPanels(b, 300, 40, 256, packed);
    expect(Buffer.compare(Buffer.from(packed.buffer), bytes.subarray(at.offset, at.offset + at.length))).toBe(0);
    expect(Buffer.compare(await outputOfFile(x.file), want)).toBe(0);
    const poke = (offset: number): void => {
      const fd = openSync(weightsOf(x), 'r+');
      writeSync(fd, new Uint8Array(new Float32Array([1000]).buffer), 0, 4, offset);
      closeSync(fd);
    };
    poke(at.offset);
    expect(Buffer.compare(await outputOfFile(x.file), want)).not.toBe(0);
    x.dispose();
  });

  it('records on the first build what a later load of the saved graph records (ORT’s keys and lengths)', async () => {
    const dir = join(root, 'again');
    const file = build(dir, true);
    await (await createBuiltSession(file, cpu, { log, optimizeInChild: false })).release();
    const first = readPrepacked(dir)!.tensors;
    expect(Object.keys(first).sort()).toEqual(['out.weight.T', 'proj.weight.T']);
    rmSync(join(dir, PREPACKED_JSON));
    // No record (a cache built before records were): this load hashes ORT's keys beside its session creation (saved-prepacks.ts).
    expect(Buffer.compare(await outputOf(await createBuiltSession(file, cpu, { log })), await reference())).toBe(0);
    expect(readPrepacked(dir)!.tensors).toEqual(first);
  });

  it('optimises a large first build in a child process: the same record and outputs, bit for bit', async () => {
    // ORT's own keys: the record of an in-process first build, read from the packed buffers ORT saved.
    const ortDir = join(root, 'ort-keys');
    await (await createBuiltSession(build(ortDir, true), cpu, { log, optimizeInChild: false })).release();
    const ortKeys = readPrepacked(ortDir)!.tensors;
    const dir = join(root, 'child');
    const file = build(dir, true);
    lines.length = 0;
    expect(Buffer.compare(await outputOf(await createBuiltSession(file, cpu, { log, optimizeInChild: true })), await reference())).toBe(0);
    expect(lines.some((l) => /ORT optimised and saved .* in a child process/.test(l))).toBe(true);
    // The child packed nothing; the keys were computed from its saved graph, and they are ORT's.
    expect(lines.some((l) => /hashed 2 MatMul\/Gemm weights for ORT's keys/.test(l))).toBe(true);
    expect(lines.filter((l) => l.startsWith('WARN'))).toEqual([]);
    const record = readPrepacked(dir)!;
    expect(Object.keys(record.tensors).sort()).toEqual(['out.weight.T', 'proj.weight.T']);
    expect(record.tensors).toEqual(ortKeys);
    // The child's scratch files are gone; the cache holds the shared graph and the record only.
    expect(readdirSync(dir).filter((f) => f.startsWith('optimized') && !f.startsWith('optimized-shared-'))).toEqual(['optimized.onnx']);
    expect(Buffer.compare(await outputOf(await createBuiltSession(file, cpu, { log })), await reference())).toBe(0);
  });

  it('ignores a record written for another saved graph (the graph loads as before, ORT packing)', async () => {
    const dir = join(root, 'stale');
    const file = build(dir, true);
    for (let i = 0; i < 2; i++) await (await createBuiltSession(file, cpu, { log })).release();
    expect(readPrepacked(dir)).toBeDefined();
    const opt = join(dir, 'optimized.onnx');
    const st = statSync(opt);
    utimesSync(opt, st.atime, new Date(st.mtimeMs + 5000));
    expect(readPrepacked(dir)).toBeUndefined();
    const x = (await expandHalfWeightsParallel(opt, { packed: readPrepacked(dir), scratchRoot: tmpdir() }))!;
    expect(prepackedEntry(x, 'proj.weight.T')).toBeUndefined();
    x.dispose();
    // The next load records it again for the graph as it is now, with the same outputs.
    expect(Buffer.compare(await outputOf(await createBuiltSession(join(dir, 'model.onnx'), cpu, { log })), await reference())).toBe(0);
    expect(readPrepacked(dir)).toBeDefined();
  });
});

describe('expandHalfWeightsParallel', () => {
  const root = mkdtempSync(join(tmpdir(), 'weft-expand-par-'));

  it('writes the same files with worker threads as on this thread alone', async () => {
    const file = build(join(root, 'm'), true);
    const one = expandHalfWeights(file)!;
    for (const threads of [2, 3]) {
      const many = (await expandHalfWeightsParallel(file, { threads }))!;
      expect(many.bytes).toBe(one.bytes);
      expect(Buffer.compare(readFileSync(many.file), readFileSync(one.file))).toBe(0);
      expect(Buffer.compare(readFileSync(weightsOf(many)), readFileSync(weightsOf(one)))).toBe(0);
      many.dispose();
    }
    // The unoptimised graph with its weights widened gives the float32 build's bits.
    expect(Buffer.compare(await outputOfFile(one.file), await outputOfFile(build(join(root, 'f'), false)))).toBe(0);
    one.dispose();
  });

  it('fails clearly on a damaged cache file, in a worker too, and leaves no scratch folder behind', async () => {
    const file = build(join(root, 'cut'), true);
    truncateSync(join(root, 'cut', 'weights.bin'), 1000);
    const scratch = mkdtempSync(join(tmpdir(), 'weft-scratch-'));
    for (const threads of [1, 2])
      await expect(expandHalfWeightsParallel(file, { threads, scratchRoot: scratch })).rejects.toThrow(
        /weights\.bin: short read at byte \d+ .*damaged cache/,
      );
    expect(readdirSync(scratch)).toEqual([]);
    expect(existsSync(file)).toBe(true);
  });
});

describe('choosePacking', () => {
  it('writes the packed copies only where the expanded file is memory, and falls back to the plain file where only that fits', () => {
    const GB = 2 ** 30;
    const box = { shmFree: 11.7 * GB, memAvailable: 22 * GB };
    // The SD1.5 ControlNet on the 24 GB machine: 1.83 GB with the packed copies, in /dev/shm.
    expect(choosePacking(1.83 * GB, 1.34 * GB, box)).toEqual({ packs: true, scratch: 'shm' });
    // With the copies it would not fit in memory twice over, without it does: the plain file, in /dev/shm.
    expect(choosePacking(9.5 * GB, 8 * GB, box)).toEqual({ packs: false, scratch: 'shm' });
    // A full-size SDXL UNet (9.8 GB expanded): on disk, without the copies.
    expect(choosePacking(15 * GB, 9.8 * GB, box)).toEqual({ packs: false, scratch: 'tmp' });
    // No /dev/shm at all.
    expect(choosePacking(1.83 * GB, 1.34 * GB, { shmFree: undefined, memAvailable: 22 * GB })).toEqual({ packs: false, scratch: 'tmp' });
    // Nothing to pack.
    expect(choosePacking(GB, GB, box)).toEqual({ packs: false, scratch: 'shm' });
  });
});
