import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MapWeightSource } from '../../engine/core/weights.ts';
import { OrtUnet } from '../../engine/models/ort-unet.ts';
import { PartsRuntime } from '../../engine/models/runtime/parts-runtime.ts';
import { lcg } from '../models-onnx/tiny.ts';
import { fakeUnetGraph } from './fakes.ts';

const quiet = { info: () => {}, warn: () => {}, error: () => {} };
const W = Float32Array.from([0.5, -1, 2, 0]);
const weights = new MapWeightSource(new Map([['w', { shape: [1, 4, 1, 1], data: W }]]));
const runtime = new PartsRuntime({ cacheDir: mkdtempSync(join(tmpdir(), 'weft-unet-extra-')), device: 'cpu', log: quiet });
const unet = (withY: boolean): OrtUnet =>
  new OrtUnet(
    4,
    8,
    1,
    runtime.runner({
      id: withY ? 'unet_y' : 'unet_plain',
      hash: '0'.repeat(64),
      weights,
      prefix: '',
      build: (w) => fakeUnetGraph(w, withY),
    }),
  );

const B = 2;
const x = { shape: [B, 4, 2, 3], data: lcg(B * 24, 1) };
const args = { x, timesteps: new Float32Array([5, 5]), context: { shape: [B, 3, 8], data: lcg(B * 24, 2) } };
const y = { shape: [B, 4, 1, 1], data: Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]) };

describe('OrtUnet extra inputs', () => {
  it('feeds args.extra by name to a graph that has the input', async () => {
    const out = await unet(true).run({ ...args, extra: { y } });
    const expected = [...x.data].map((v, i) => {
      const b = Math.floor(i / 24);
      const c = Math.floor(i / 6) % 4;
      return Math.fround(Math.fround(Math.fround(2 * v) + W[c]) + y.data[b * 4 + c]);
    });
    expect([...out.data]).toEqual(expected);
  });

  it('refuses a name the graph has no input for, one it feeds itself, and a wrong batch', async () => {
    await expect(unet(false).run({ ...args, extra: { y } })).rejects.toThrow(
      /has no input 'y' \(its inputs: x, timesteps, context, control_in_0, control_mid\)/,
    );
    await expect(unet(true).run({ ...args, extra: { y, label: y } })).rejects.toThrow(/no input 'label'/);
    await expect(unet(true).run({ ...args, extra: { context: args.context } })).rejects.toThrow(
      /extra input 'context' would replace one the UNet handle feeds itself/,
    );
    await expect(unet(true).run({ ...args, extra: { y: { shape: [1, 4, 1, 1], data: y.data.subarray(0, 4) } } })).rejects.toThrow(
      /'y' has batch 1, expected 2/,
    );
  });
});
