import type { Latent, Tensor } from '../core/tensor.ts';
import { resizeNCHW } from '../image/resize.ts';
import type { ModelHandle } from '../models/handles.ts';
import type { PreviewImage } from '../core/preview.ts';
import type { Conditioning } from './conditioning.ts';
import { cfgDenoiser } from './guider.ts';
import { modelSamplingFromConfig } from './model-sampling.ts';
import { brownianNoiseSampler, defaultNoiseSampler, prepareNoise } from './noise/index.ts';
import { latentPreview } from './preview.ts';
import { getSampler, samplerNeedsNoise, samplerUsesBrownian } from './samplers/index.ts';
import type { Denoise, NoiseSampler } from './samplers/types.ts';
import { ksamplerSigmas } from './schedulers.ts';

/**
 * ComfyUI's `common_ksampler` → `comfy.sample.sample` → `KSampler.sample` → `CFGGuider` →
 * `KSAMPLER.sample` path, step for step, so a workflow, checkpoint and seed give ComfyUI's latent:
 * noise from the seed (batch_index aware), sigmas from the scheduler trimmed by denoise and
 * start/end steps, the start noise scaled as ComfyUI scales it, inpainting through the x0-inpaint
 * wrapper, and the ancestral/SDE noise samplers seeded as ComfyUI seeds them.
 */

export interface KSamplerArgs {
  model: ModelHandle;
  seed: bigint;
  steps: number;
  cfg: number;
  samplerName: string;
  scheduler: string;
  positive: Conditioning;
  negative: Conditioning;
  latent: Latent;
  denoise?: number;
  disableNoise?: boolean;
  startStep?: number;
  lastStep?: number;
  forceFullDenoise?: boolean;
  signal?: AbortSignal;
  /** Called after every step with a preview every `previewEvery` steps (0 = never). */
  onStep?: (step: number, total: number, preview?: PreviewImage) => void;
  previewEvery?: number;
}

/** A seed widget value (number, or digit string / bigint beyond 2^53) → ComfyUI's 64-bit seed. */
export function toSeed(v: unknown, what = 'seed'): bigint {
  let s: bigint;
  if (typeof v === 'bigint') s = v;
  else if (typeof v === 'number' && Number.isFinite(v)) s = BigInt(Math.trunc(v));
  else if (typeof v === 'string' && /^\s*-?\d+\s*$/.test(v)) s = BigInt(v.trim());
  else throw new Error(`${what} must be an integer, got ${String(v)}`);
  if (s < 0n || s >= 2n ** 64n) throw new Error(`${what} ${s} is outside 0 … 2^64 − 1`);
  return s;
}

/** ComfyUI's prepare_mask: the noise mask resized (bilinear) to the latent and repeated over channels and batch. */
export function prepareMask(mask: Tensor, shape: readonly number[]): Float32Array {
  const [B, C, H, W] = shape;
  const mh = mask.shape[mask.shape.length - 2];
  const mw = mask.shape[mask.shape.length - 1];
  const mb = mask.data.length / (mh * mw);
  const resized = mh === H && mw === W ? mask.data : resizeNCHW({ shape: [mb, 1, mh, mw], data: mask.data }, H, W, 'bilinear').data;
  const out = new Float32Array(B * C * H * W);
  const S = H * W;
  for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) out.set(resized.subarray((b % mb) * S, (b % mb + 1) * S), (b * C + c) * S);
  return out;
}

export async function ksample(a: KSamplerArgs): Promise<Latent> {
  const latentImage = a.latent.samples;
  const shape = latentImage.shape;
  if (shape.length !== 4) throw new Error(`latent must be [B, C, H, W], got [${shape.join(', ')}]`);
  if (shape[1] !== a.model.latentFormat.channels) throw new Error(`latent has ${shape[1]} channels but the model takes ${a.model.latentFormat.channels}`);
  const ms = modelSamplingFromConfig(a.model.sampling);

  let sigmas = ksamplerSigmas(ms, a.scheduler, a.steps, a.denoise ?? 1, a.samplerName);
  if (a.lastStep !== undefined && a.lastStep < sigmas.length - 1) sigmas = sigmas.slice(0, a.lastStep + 1);
  if (a.forceFullDenoise && sigmas.length) {
    sigmas = sigmas.slice();
    sigmas[sigmas.length - 1] = 0;
  }
  if (a.startStep !== undefined) {
    if (a.startStep < sigmas.length - 1) sigmas = sigmas.slice(a.startStep);
    else return { ...a.latent, samples: latentImage };
  }
  if (sigmas.length === 0) return { ...a.latent, samples: latentImage };

  const n = latentImage.data.length;
  const noise = a.disableNoise ? new Float32Array(n) : prepareNoise(shape, a.seed, a.latent.batchIndex);
  const scale = a.model.latentFormat.scaleFactor;
  const latentIn = latentImage.data.map((v) => v * scale);
  const mask = a.latent.noiseMask ? prepareMask(a.latent.noiseMask, shape) : undefined;

  const guided = cfgDenoiser({ model: a.model, modelSampling: ms, positive: a.positive, negative: a.negative, cfg: a.cfg, signal: a.signal, sigmas }, shape);
  let denoise: Denoise = guided;
  if (mask) {
    // KSamplerX0Inpaint: the unmasked part is held at the (re-noised) original on the way in and
    // replaced by the original x0 on the way out.
    denoise = async (x, sigma) => {
      const renoised = ms.noiseScaling(sigma, noise, latentIn, false);
      const xin = new Float32Array(n);
      for (let i = 0; i < n; i++) xin[i] = x.data[i] * mask[i] + renoised[i] * (1 - mask[i]);
      const out = await guided({ shape, data: xin }, sigma);
      const data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = out.data[i] * mask[i] + latentIn[i] * (1 - mask[i]);
      return { shape, data };
    };
  }

  const x0 = ms.noiseScaling(sigmas[0], noise, latentIn, ms.isMaxDenoise(sigmas[0]));
  let noiseSampler: NoiseSampler | undefined;
  if (samplerUsesBrownian(a.samplerName)) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const s of sigmas) {
      if (s > 0) lo = Math.min(lo, s);
      hi = Math.max(hi, s);
    }
    noiseSampler = brownianNoiseSampler(a.seed, shape, lo, hi);
  } else if (samplerNeedsNoise(a.samplerName)) noiseSampler = defaultNoiseSampler(a.seed, shape);

  const sampler = getSampler(a.samplerName);
  const every = a.previewEvery ?? 1;
  const out = await sampler(
    {
      denoise,
      noise: noiseSampler,
      signal: a.signal,
      callback: (info) => {
        const preview = every > 0 && ((info.i + 1) % every === 0 || info.i + 1 === info.totalSteps) ? latentPreview(info.denoised, a.model.latentFormat) : undefined;
        a.onStep?.(info.i + 1, info.totalSteps, preview);
      },
    },
    { shape, data: x0 },
    sigmas,
  );
  const samples = ms.inverseNoiseScaling(sigmas[sigmas.length - 1], out.data).map((v) => v / scale);
  return { ...a.latent, samples: { shape, data: samples } };
}
