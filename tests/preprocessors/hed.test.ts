import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { tensor, type ImageTensor } from '../../engine/core/tensor.ts';
import { openWeights } from '../../engine/formats/open-weights.ts';
import { makeRandomHed } from '../../engine/models/annotators/generate.ts';
import { hedGraph } from '../../engine/models/annotators/hed.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import { HEDPreprocessor } from '../../nodes/controlnet/preprocessors/hed.ts';
import '../../nodes/model/services.ts';

const quiet = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {} };

/** Plain-loop ControlNetHED_Apache2 (float64 sums): conv3×3 pad 1 + ReLU, 2×2 max-pool, 1×1 projections. */
function reference(get: (n: string) => Float32Array, x: Float64Array, H: number, W: number): Float64Array[] {
  const norm = get('norm');
  let c = 3;
  let h = H;
  let w = W;
  let a = Float64Array.from(x, (v, i) => v - norm[Math.floor(i / (H * W))]);
  const outs: Float64Array[] = [];
  const layers = [2, 2, 3, 3, 3];
  layers.forEach((n, b) => {
    if (b > 0) {
      const nh = Math.floor(h / 2);
      const nw = Math.floor(w / 2);
      const p = new Float64Array(c * nh * nw);
      for (let k = 0; k < c; k++)
        for (let y = 0; y < nh; y++)
          for (let xx = 0; xx < nw; xx++) {
            let m = -Infinity;
            for (let dy = 0; dy < 2; dy++) for (let dx = 0; dx < 2; dx++) m = Math.max(m, a[(k * h + 2 * y + dy) * w + 2 * xx + dx]);
            p[(k * nh + y) * nw + xx] = m;
          }
      a = p;
      h = nh;
      w = nw;
    }
    for (let j = 0; j < n; j++) {
      const wt = get(`block${b + 1}.convs.${j}.weight`);
      const bias = get(`block${b + 1}.convs.${j}.bias`);
      const co = bias.length;
      const o = new Float64Array(co * h * w);
      for (let q = 0; q < co; q++)
        for (let y = 0; y < h; y++)
          for (let xx = 0; xx < w; xx++) {
            let s = bias[q];
            for (let k = 0; k < c; k++)
              for (let dy = -1; dy <= 1; dy++) {
                const yy = y + dy;
                if (yy < 0 || yy >= h) continue;
                for (let dx = -1; dx <= 1; dx++) {
                  const x2 = xx + dx;
                  if (x2 < 0 || x2 >= w) continue;
                  s += wt[((q * c + k) * 3 + dy + 1) * 3 + dx + 1] * a[(k * h + yy) * w + x2];
                }
              }
            o[(q * h + y) * w + xx] = Math.max(0, s);
          }
      a = o;
      c = co;
    }
    const pw = get(`block${b + 1}.projection.weight`);
    const pb = get(`block${b + 1}.projection.bias`);
    const pr = new Float64Array(h * w);
    for (let i = 0; i < h * w; i++) {
      let s = pb[0];
      for (let k = 0; k < c; k++) s += pw[k] * a[k * h * w + i];
      pr[i] = s;
    }
    outs.push(pr);
  });
  return outs;
}

describe('HEDPreprocessor (ControlNetHED_Apache2 built from its state dict)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-hed-'));
  const models = join(dir, 'models');
  const file = join(models, 'annotators', 'lllyasviel', 'Annotators', 'ControlNetHED.safetensors');
  makeRandomHed(file, 9);

  it('the ONNX graph equals a plain-loop reference on all five side outputs (relative error < 1e-4)', async () => {
    const ws = openWeights(file);
    const H = 16;
    const W = 24;
    const x = new Float32Array(3 * H * W).map((_, i) => (i * 37) % 256);
    const session = await ort.InferenceSession.create(hedGraph(ws).toBuffer());
    const out = await session.run({ image: new ort.Tensor('float32', x, [1, 3, H, W]) });
    const ref = reference((n) => ws.get(n), Float64Array.from(x), H, W);
    ref.forEach((r, i) => {
      const got = (out[`projection${i + 1}`] as ort.Tensor).data as Float32Array;
      expect(got.length).toBe(r.length);
      let scale = 0;
      let err = 0;
      for (let k = 0; k < r.length; k++) {
        scale = Math.max(scale, Math.abs(r[k]));
        err = Math.max(err, Math.abs(got[k] - r[k]));
      }
      expect(scale).toBeGreaterThan(0);
      expect(err / scale).toBeLessThan(1e-4);
    });
  });

  it('runs as a node from the aux ckpts layout: soft edges at detect resolution, safe mode quantised to 0/127/255', async () => {
    const ctx = {
      services: { models: new ModelManager({ cacheDir: join(dir, 'cache'), device: 'cpu', log: quiet }) },
      log: quiet,
      signal: new AbortController().signal,
      progress: () => {},
      paths: new FolderPaths({ baseDir: dir, modelsDir: models }),
    } as unknown as NodeContext;
    const img = tensor([1, 40, 30, 3]);
    for (let i = 0; i < img.data.length; i++) img.data[i] = ((i * 7) % 255) / 255;
    const [safe] = (await HEDPreprocessor.run({ image: img, resolution: 64, safe: 'enable' }, ctx)) as [ImageTensor];
    expect(safe.shape).toEqual([1, 85, 64, 3]);
    expect(new Set(Array.from(safe.data, (v) => Math.round(v * 255))).size).toBeLessThanOrEqual(3);
    for (const v of safe.data) expect([0, 127, 255]).toContain(Math.round(v * 255));
    const [soft] = (await HEDPreprocessor.run({ image: img, resolution: 64, safe: 'disable' }, ctx)) as [ImageTensor];
    expect(new Set(soft.data).size).toBeGreaterThan(3);
  });
});
