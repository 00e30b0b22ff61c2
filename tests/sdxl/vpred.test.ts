import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tensor } from '../../engine/core/tensor.ts';
import { SDXL_VARIANT_MARKERS } from '../../engine/models/families/sdxl/make.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import { relErr } from '../models-onnx/tiny.ts';
import { karras, ksampleBesideReference } from './reference-loop.ts';
import { makeTinySdxl, type TinySdxl } from './tiny.ts';

/**
 * A NoobAI-style SDXL (`v_pred` + `ztsnr` keys) through KSampler on the tiny SDXL against a float64 loop
 * whose σ table is computed here from the β schedule and ComfyUI's zero-terminal-SNR rescale.
 */

const quiet = { info: () => {}, warn: () => {}, error: () => {} };
let vpred: TinySdxl;
beforeAll(async () => {
  vpred = await makeTinySdxl(15, 'base', SDXL_VARIANT_MARKERS.vpred);
}, 120_000);
afterAll(() => vpred && rmSync(vpred.dir, { recursive: true, force: true }));

/** SD's scaled-linear β schedule as σ per timestep in float64, rescaled to zero terminal SNR (ComfyUI's rescale_zero_terminal_snr_sigmas). */
function zsnrSigmas(): Float64Array {
  const n = 1000;
  const a = Math.sqrt(0.00085);
  const b = Math.sqrt(0.012);
  let cum = 1;
  const root = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const beta = (a + ((b - a) * i) / (n - 1)) ** 2;
    cum *= 1 - beta;
    root[i] = Math.sqrt(cum);
  }
  const first = root[0];
  const last = root[n - 1];
  // √ᾱ shifted so the last is 0 and scaled so the first keeps its value; the last ᾱ pinned so its σ stays finite.
  return root.map((r, i) => {
    const alphaBar = i === n - 1 ? 4.8973451890853435e-8 : (((r - last) * first) / (first - last)) ** 2;
    return Math.sqrt((1 - alphaBar) / alphaBar);
  });
}

describe('v prediction with zero terminal SNR (v_pred + ztsnr, NoobAI-style)', () => {
  it('KSampler euler/karras, 2 steps, cfg 4, over the rescaled discrete schedule: within 1e-4 of the float64 loop', async () => {
    expect(vpred.cfg).toMatchObject({ prediction: 'v_prediction', zsnr: true });
    const parts = await new ModelManager({ cacheDir: join(vpred.dir, 'cache'), device: 'cpu', log: quiet }).loadCheckpoint(vpred.file);
    const latent: Tensor = { shape: [1, 4, 4, 4], data: new Float32Array(64) };
    const table = zsnrSigmas();
    expect(table[999]).toBeCloseTo(4518.8, 0);
    const logs = table.map(Math.log);
    // ModelSamplingDiscrete.timestep: the index of the nearest log σ.
    const timestep = (s: number): number => {
      let best = 0;
      for (let i = 1; i < logs.length; i++) if (Math.abs(Math.log(s) - logs[i]) < Math.abs(Math.log(s) - logs[best])) best = i;
      return best;
    };
    const k = 0.13025;
    const { samples, expected } = await ksampleBesideReference(
      {
        tiny: vpred,
        parts,
        latent,
        sigmas: karras(2, table[0], table[999]),
        cfg: 4,
        sigmaData: 1,
        sign: -1,
        processIn: (v) => v * k,
        processOut: (v) => v / k,
        timestep,
      },
      { positive: 'a white cat', negative: '' },
      5n,
    );
    expect(relErr(samples.data, expected)).toBeLessThan(1e-4);
  }, 180_000);
});
