import { describe, expect, it } from 'vitest';
import { PLAYGROUND_V25_LATENT_FORMAT, SDXL_LATENT_FORMAT } from '../../engine/models/families/sdxl/latent.ts';
import { processLatentIn, processLatentInUnlessEmpty, processLatentOut } from '../../engine/models/latent-format.ts';
import { latentPreview } from '../../engine/sampling/preview.ts';
import { lcg } from '../models-onnx/tiny.ts';

/** ComfyUI's SDXL_Playground_2_5 constants, as latent_formats.py has them. */
const MEAN = [-1.6574, 1.886, -1.383, 2.5155];
const STD = [8.4927, 5.9022, 6.5498, 5.2299];

describe('latent formats: process_in / process_out', () => {
  const shape = [2, 4, 3, 5];
  const data = lcg(120, 17, 10);
  const channel = (k: number): number => Math.floor(k / 15) % 4;

  it('Playground v2.5: (x − mean)·0.5/std per channel and back, within float32 rounding of the float64 formula', () => {
    const inn = processLatentIn(PLAYGROUND_V25_LATENT_FORMAT, { shape, data });
    const out = processLatentOut(PLAYGROUND_V25_LATENT_FORMAT, { shape, data });
    // Three float32 roundings: a few units of 2⁻²⁴ relative to the larger of the value and the mean.
    const close = (got: number, want: number, scale: number): void =>
      expect(Math.abs(got - want)).toBeLessThan(1e-6 * Math.max(1, Math.abs(want), scale));
    for (let k = 0; k < data.length; k++) {
      const c = channel(k);
      close(inn[k], ((data[k] - MEAN[c]) * 0.5) / STD[c], 1);
      close(out[k], (data[k] * STD[c]) / 0.5 + MEAN[c], (Math.abs(data[k]) * STD[c]) / 0.5);
    }
    const back = processLatentOut(PLAYGROUND_V25_LATENT_FORMAT, { shape, data: inn });
    for (let k = 0; k < data.length; k++) close(back[k], data[k], 10);
  });

  it('a scale-only format multiplies and divides exactly as before (float64 product rounded once)', () => {
    const inn = processLatentIn(SDXL_LATENT_FORMAT, { shape, data });
    const out = processLatentOut(SDXL_LATENT_FORMAT, { shape, data });
    for (let k = 0; k < data.length; k++) {
      expect(inn[k]).toBe(Math.fround(data[k] * 0.13025));
      expect(out[k]).toBe(Math.fround(data[k] / 0.13025));
    }
  });

  it('an all-zero latent is left unprocessed by the sampler (ComfyUI does not shift the empty latent), a non-empty one is', () => {
    const zeros = { shape, data: new Float32Array(120) };
    expect(Array.from(processLatentInUnlessEmpty(PLAYGROUND_V25_LATENT_FORMAT, zeros)).every((v) => v === 0)).toBe(true);
    const one = new Float32Array(120);
    one[0] = 1;
    const shifted = processLatentInUnlessEmpty(PLAYGROUND_V25_LATENT_FORMAT, { shape, data: one });
    expect(shifted[1]).toBeCloseTo(((0 - MEAN[0]) * 0.5) / STD[0], 6);
  });

  it('a latent whose channels do not match the per-channel constants is refused, naming both', () => {
    expect(() => processLatentIn(PLAYGROUND_V25_LATENT_FORMAT, { shape: [1, 16, 2, 2], data: new Float32Array(64) })).toThrow(
      /\[1, 16, 2, 2\].*4 per-channel/,
    );
  });

  it('previews use Playground’s own latent → RGB factors, without a bias', () => {
    const x0 = { shape: [1, 4, 1, 1], data: Float32Array.of(0.5, -0.25, 0.1, 0.3) };
    const rgb = latentPreview(x0, PLAYGROUND_V25_LATENT_FORMAT).rgb;
    const f = [
      [0.392, 0.4054, 0.4549],
      [-0.2634, -0.0196, 0.0653],
      [0.0568, 0.1687, -0.0755],
      [-0.3112, -0.2359, -0.2076],
    ];
    for (let k = 0; k < 3; k++) {
      const v = x0.data.reduce((s, x, c) => s + x * f[c][k], 0);
      expect(rgb[k]).toBe(Math.round(Math.min(1, Math.max(0, (v + 1) / 2)) * 255));
    }
  });
});
