import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { tensor, type ImageTensor } from '../../engine/core/tensor.ts';
import { openWeights } from '../../engine/formats/open-weights.ts';
import { makeRandomLineart } from '../../engine/models/annotators/generate.ts';
import { lineartGraph } from '../../engine/models/annotators/lineart.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import { LineArtPreprocessor } from '../../nodes/controlnet/preprocessors/lineart.ts';
import '../../nodes/model/services.ts';

const quiet = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {} };

interface Map3 {
  c: number;
  h: number;
  w: number;
  d: Float64Array;
}

const reflectIdx = (i: number, n: number): number => (i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i);

function pad(x: Map3, p: number): Map3 {
  const h = x.h + 2 * p;
  const w = x.w + 2 * p;
  const d = new Float64Array(x.c * h * w);
  for (let c = 0; c < x.c; c++)
    for (let y = 0; y < h; y++)
      for (let xx = 0; xx < w; xx++) d[(c * h + y) * w + xx] = x.d[(c * x.h + reflectIdx(y - p, x.h)) * x.w + reflectIdx(xx - p, x.w)];
  return { c: x.c, h, w, d };
}

function conv(x: Map3, wt: Float32Array, b: Float32Array, k: number, stride: number, p: number): Map3 {
  const o = b.length;
  const h = Math.floor((x.h + 2 * p - k) / stride) + 1;
  const w = Math.floor((x.w + 2 * p - k) / stride) + 1;
  const d = new Float64Array(o * h * w);
  for (let q = 0; q < o; q++)
    for (let y = 0; y < h; y++)
      for (let xx = 0; xx < w; xx++) {
        let s = b[q];
        for (let c = 0; c < x.c; c++)
          for (let ky = 0; ky < k; ky++) {
            const iy = y * stride + ky - p;
            if (iy < 0 || iy >= x.h) continue;
            for (let kx = 0; kx < k; kx++) {
              const ix = xx * stride + kx - p;
              if (ix < 0 || ix >= x.w) continue;
              s += wt[((q * x.c + c) * k + ky) * k + kx] * x.d[(c * x.h + iy) * x.w + ix];
            }
          }
        d[(q * h + y) * w + xx] = s;
      }
  return { c: o, h, w, d };
}

/** ConvTranspose2d(k 3, stride 2, padding 1, output_padding 1): output 2h × 2w. */
function convT(x: Map3, wt: Float32Array, b: Float32Array): Map3 {
  const o = b.length;
  const h = 2 * x.h;
  const w = 2 * x.w;
  const d = new Float64Array(o * h * w);
  for (let q = 0; q < o; q++) d.fill(b[q], q * h * w, (q + 1) * h * w);
  for (let c = 0; c < x.c; c++)
    for (let iy = 0; iy < x.h; iy++)
      for (let ix = 0; ix < x.w; ix++) {
        const v = x.d[(c * x.h + iy) * x.w + ix];
        for (let q = 0; q < o; q++)
          for (let ky = 0; ky < 3; ky++) {
            const y = iy * 2 - 1 + ky;
            if (y < 0 || y >= h) continue;
            for (let kx = 0; kx < 3; kx++) {
              const xx = ix * 2 - 1 + kx;
              if (xx < 0 || xx >= w) continue;
              d[(q * h + y) * w + xx] += v * wt[((c * o + q) * 3 + ky) * 3 + kx];
            }
          }
      }
  return { c: o, h, w, d };
}

function normRelu(x: Map3, relu: boolean): Map3 {
  const n = x.h * x.w;
  const d = new Float64Array(x.d.length);
  for (let c = 0; c < x.c; c++) {
    let m = 0;
    for (let i = 0; i < n; i++) m += x.d[c * n + i];
    m /= n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (x.d[c * n + i] - m) ** 2;
    v /= n;
    for (let i = 0; i < n; i++) {
      const y = (x.d[c * n + i] - m) / Math.sqrt(v + 1e-5);
      d[c * n + i] = relu ? Math.max(0, y) : y;
    }
  }
  return { ...x, d };
}

function reference(get: (n: string) => Float32Array, x: Map3): Float64Array {
  const cv = (m: Map3, key: string, k: number, s = 1, p = 0): Map3 => conv(m, get(`${key}.weight`), get(`${key}.bias`), k, s, p);
  let h = normRelu(cv(pad(x, 3), 'model0.1', 7), true);
  h = normRelu(cv(h, 'model1.0', 3, 2, 1), true);
  h = normRelu(cv(h, 'model1.3', 3, 2, 1), true);
  for (let i = 0; i < 3; i++) {
    const k = `model2.${i}.conv_block`;
    const a = normRelu(cv(pad(h, 1), `${k}.1`, 3), true);
    const r = normRelu(cv(pad(a, 1), `${k}.5`, 3), false);
    h = { ...h, d: h.d.map((v, j) => v + r.d[j]) };
  }
  h = normRelu(convT(h, get('model3.0.weight'), get('model3.0.bias')), true);
  h = normRelu(convT(h, get('model3.3.weight'), get('model3.3.bias')), true);
  const o = cv(pad(h, 3), 'model4.1', 7);
  return o.d.map((v) => 1 / (1 + Math.exp(-v)));
}

describe('LineArtPreprocessor (the lineart Generator built from its state dict)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-lineart-'));
  const models = join(dir, 'models');
  const file = join(models, 'annotators', 'sk_model.safetensors');
  makeRandomLineart(file, 4);

  it('the ONNX graph equals a plain-loop reference (absolute error < 1e-4 on the sigmoid output)', async () => {
    const ws = openWeights(file);
    const H = 16;
    const W = 20;
    const x = new Float32Array(3 * H * W).map((_, i) => ((i * 37) % 256) / 255);
    const session = await ort.InferenceSession.create(lineartGraph(ws).toBuffer());
    const got = (await session.run({ image: new ort.Tensor('float32', x, [1, 3, H, W]) })).line as ort.Tensor;
    expect(got.dims).toEqual([1, 1, H, W]);
    const ref = reference((n) => ws.get(n), { c: 3, h: H, w: W, d: Float64Array.from(x) });
    let err = 0;
    let spread = 0;
    for (let i = 0; i < ref.length; i++) {
      err = Math.max(err, Math.abs((got.data as Float32Array)[i] - ref[i]));
      spread = Math.max(spread, Math.abs(ref[i] - ref[0]));
    }
    expect(spread).toBeGreaterThan(1e-3);
    expect(err).toBeLessThan(1e-4);
  });

  it('runs as a node: inverted lines at detect resolution; a missing coarse model names the file', async () => {
    const ctx = {
      services: { models: new ModelManager({ cacheDir: join(dir, 'cache'), device: 'cpu', log: quiet }) },
      log: quiet,
      signal: new AbortController().signal,
      progress: () => {},
      paths: new FolderPaths({ baseDir: dir, modelsDir: models }),
    } as unknown as NodeContext;
    const img = tensor([1, 30, 40, 3]);
    for (let i = 0; i < img.data.length; i++) img.data[i] = ((i * 7) % 255) / 255;
    const [out] = (await LineArtPreprocessor.run({ image: img, resolution: 64 }, ctx)) as [ImageTensor];
    expect(out.shape).toEqual([1, 64, 85, 3]);
    await expect(LineArtPreprocessor.run({ image: img, coarse: 'enable' }, ctx)).rejects.toThrow(/sk_model2\.pth not found/);
  });
});
