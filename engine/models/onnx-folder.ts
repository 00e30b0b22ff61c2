import * as ort from 'onnxruntime-node';
import type { Tensor } from '../core/tensor.ts';
import { InterruptedError } from '../core/errors.ts';
import { type Logger } from '../core/log.ts';
import { loadClipTokenizer } from '../text/clip-tokenizer.ts';
import type { FolderPaths } from '../paths/folders.ts';
import type { VaeConfig } from './families/sd1/config.ts';
import { detectOnnxFolder } from './detect-onnx.ts';
import { CLIP_IO } from './families/sd1/graphs/clip-graph.ts';
import type { ModelHandle, UNetRunArgs, UNetRunner } from './handles.ts';
import { OrtClip } from './ort-clip.ts';
import { OrtVae } from './ort-vae.ts';
import { SD1 } from './families/sd1/index.ts';
import { SD1_SAMPLING, sd1LatentFormat } from './families/sd1/latent.ts';

/**
 * diffusers/Optimum ONNX exports (text_encoder/, unet/, vae_decoder/, vae_encoder/, tokenizer/) as
 * MODEL/CLIP/VAE handles. Their graphs are used as exported, so what they lack stays lacking, said
 * plainly: no ControlNet residual inputs, no intermediate CLIP layers for clip skip (unless exported),
 * no weight patches. Input names and dtypes are read from each session's metadata.
 */

export type UseSession = <T>(key: string, file: string, fn: (s: ort.InferenceSession) => Promise<T>) => Promise<T>;

type Dtype = ort.Tensor.Type;

function inputType(s: ort.InferenceSession, name: string): Dtype {
  const m = s.inputMetadata.find((v) => v.name === name);
  return m && m.isTensor ? m.type : 'float32';
}

function pick(names: readonly string[], wanted: readonly string[], what: string, file: string): string {
  const n = wanted.find((w) => names.includes(w));
  if (!n) throw new Error(`${file}: the ${what} has none of the expected names (${wanted.join(', ')}); it has ${names.join(', ')}`);
  return n;
}

function toFloat32(v: ort.OnnxValue | undefined, what: string): { dims: readonly number[]; data: Float32Array } {
  if (!v || !(v instanceof ort.Tensor)) throw new Error(`${what}: no tensor returned`);
  if (v.data instanceof Float32Array) return { dims: v.dims, data: v.data };
  if (v.type === 'float16') return { dims: v.dims, data: Float32Array.from(v.data as unknown as ArrayLike<number>) };
  throw new Error(`${what}: unexpected ${v.type} output`);
}

function floatTensor(type: Dtype, data: Float32Array, dims: readonly number[]): ort.Tensor {
  if (type === 'float16') return new ort.Tensor('float16', Float16ArrayFrom(data), dims);
  return new ort.Tensor('float32', data, dims);
}

/** float32 → IEEE half bits (Uint16Array), which onnxruntime-node accepts for float16 tensors. */
function Float16ArrayFrom(data: Float32Array): Uint16Array {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  const out = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) {
    f[0] = data[i];
    const x = u[0];
    const sign = (x >>> 16) & 0x8000;
    const e = ((x >>> 23) & 0xff) - 112;
    const m = x & 0x7fffff;
    if (e <= 0) out[i] = sign;
    else if (e >= 31) out[i] = sign | 0x7c00;
    else out[i] = sign | (e << 10) | ((m + 0x1000) >>> 13);
  }
  return out;
}

class FolderUnet implements UNetRunner {
  readonly inChannels = 4;
  constructor(
    readonly contextDim: number,
    private readonly use: UseSession,
    private readonly key: string,
    private readonly file: string,
  ) {}

  async run(args: UNetRunArgs): Promise<Tensor> {
    if (args.signal?.aborted) throw new InterruptedError();
    if (args.control && (args.control.middle || args.control.input.some(Boolean) || args.control.afterInput?.some(Boolean))) {
      throw new Error(`${this.file}: this ONNX-exported UNet has no ControlNet residual inputs; load the checkpoint as .safetensors to use ControlNet`);
    }
    return this.use(this.key, this.file, async (s) => {
      const names = s.inputNames;
      const xName = pick(names, ['sample', 'x'], 'latent input', this.file);
      const tName = pick(names, ['timestep', 'timesteps', 't'], 'timestep input', this.file);
      const cName = pick(names, ['encoder_hidden_states', 'context'], 'text-conditioning input', this.file);
      const B = args.x.shape[0];
      const tType = inputType(s, tName);
      const tMeta = s.inputMetadata.find((m) => m.name === tName);
      // Some exports take one scalar timestep for the whole batch; Weft's batches share it too.
      const tDims = tMeta && tMeta.isTensor && tMeta.shape.length === 0 ? [] : [B];
      const tData = tDims.length ? args.timesteps : args.timesteps.subarray(0, 1);
      const t = tType === 'int64' ? new ort.Tensor('int64', BigInt64Array.from(tData, (v) => BigInt(Math.round(v))), tDims) : floatTensor(tType, Float32Array.from(tData), tDims);
      const feeds: Record<string, ort.Tensor> = {
        [xName]: floatTensor(inputType(s, xName), args.x.data, args.x.shape),
        [tName]: t,
        [cName]: floatTensor(inputType(s, cName), args.context.data, args.context.shape),
      };
      for (const [name, v] of Object.entries(args.extra ?? {})) {
        if (!names.includes(name) || name in feeds) throw new Error(`${this.file}: this ONNX-exported UNet has no input '${name}' (its inputs: ${names.join(', ')})`);
        feeds[name] = floatTensor(inputType(s, name), v.data, v.shape);
      }
      const out = await s.run(feeds);
      const o = toFloat32(out[s.outputNames[0]], `${this.file} output`);
      return { shape: [...o.dims], data: o.data };
    });
  }
}

export interface OnnxFolderParts {
  model: ModelHandle;
  clip: OrtClip;
  vae: OrtVae;
}

export function loadOnnxFolder(dir: string, use: UseSession, opts: { paths?: FolderPaths; log?: Logger } = {}): OnnxFolderParts {
  const f = detectOnnxFolder(dir);
  const tokenizer = loadClipTokenizer({ explicitDir: f.tokenizerDir, modelPath: `${f.dir}/model`, paths: opts.paths });
  const key = (part: string) => `onnx:${f.dir}:${part}`;
  let warnedSkip = false;
  const clip = new OrtClip({
    id: `onnx-clip:${f.dir}`,
    tokenizer,
    numLayers: 1,
    hiddenSize: 768,
    run: (feeds) =>
      use(key('text_encoder'), f.textEncoder, async (s) => {
        const tokens = feeds[CLIP_IO.tokens];
        const mask = feeds[CLIP_IO.embedsMask]?.data;
        if (mask instanceof Float32Array && mask.some((v) => v !== 0)) {
          throw new Error(`${f.textEncoder}: an exported ONNX text encoder takes token ids only, so textual-inversion embeddings cannot be used with it`);
        }
        const idName = pick(s.inputNames, ['input_ids'], 'token input', f.textEncoder);
        const ids = inputType(s, idName) === 'int32' ? new ort.Tensor('int32', Int32Array.from(tokens.data as BigInt64Array, (v) => Number(v)), tokens.dims) : tokens;
        const out = await s.run({ [idName]: ids });
        const last = toFloat32(out[pick(s.outputNames, ['last_hidden_state'], 'hidden-state output', f.textEncoder)], f.textEncoder);
        return { [CLIP_IO.hidden]: new ort.Tensor('float32', last.data, [1, ...last.dims]) };
      }),
  });
  const withLayer = clip.withLayer.bind(clip);
  clip.withLayer = (layer: number) => {
    if (layer !== -1 && !warnedSkip) {
      warnedSkip = true;
      opts.log?.warn(`${f.dir}: the ONNX text encoder exports only its last layer, so CLIPSetLastLayer ${layer} has no effect`);
    }
    return withLayer(layer);
  };
  const vaeCfg: VaeConfig = { inChannels: 3, outChannels: 3, ch: 128, chMult: [1, 2, 4, 4], numResBlocks: 2, zChannels: 4, embedDim: 4, normGroups: 32 };
  const vae = new OrtVae({
    id: `onnx-vae:${f.dir}`,
    cfg: vaeCfg,
    decoder: {
      run: (feeds) =>
        use(key('vae_decoder'), f.vaeDecoder, async (s) => {
          const lat = feeds.latent as ort.Tensor;
          const name = pick(s.inputNames, ['latent_sample', 'latent'], 'latent input', f.vaeDecoder);
          const out = await s.run({ [name]: floatTensor(inputType(s, name), lat.data as Float32Array, lat.dims) });
          const img = toFloat32(out[s.outputNames[0]], f.vaeDecoder);
          return { image: new ort.Tensor('float32', img.data, img.dims) };
        }),
    },
    encoder: {
      run: (feeds) => {
        const file = f.vaeEncoder;
        if (!file) throw new Error(`${f.dir}: this ONNX export has no vae_encoder/, so it cannot encode images (img2img, inpainting)`);
        return use(key('vae_encoder'), file, async (s) => {
          const img = feeds.image as ort.Tensor;
          const name = pick(s.inputNames, ['sample', 'image'], 'image input', file);
          const out = await s.run({ [name]: floatTensor(inputType(s, name), img.data as Float32Array, img.dims) });
          const z = toFloat32(out[s.outputNames[0]], file);
          // Newer exports return the posterior parameters (mean ‖ logvar); the mean is what ComfyUI encodes to.
          const [B, C, H, W] = z.dims;
          if (C === 8) {
            const mean = new Float32Array(B * 4 * H * W);
            for (let b = 0; b < B; b++) mean.set(z.data.subarray(b * 8 * H * W, (b * 8 + 4) * H * W), b * 4 * H * W);
            return { latent: new ort.Tensor('float32', mean, [B, 4, H, W]) };
          }
          return { latent: new ort.Tensor('float32', z.data, z.dims) };
        });
      },
    },
  });
  const sch = f.scheduler;
  const prediction = sch?.predictionType === 'v_prediction' ? 'v_prediction' : 'eps';
  const model: ModelHandle = {
    id: `onnx-unet:${f.dir}`,
    family: SD1.id,
    unet: new FolderUnet(768, use, key('unet'), f.unet),
    sampling: {
      prediction,
      betaSchedule: sch?.betaSchedule === 'linear' ? 'linear' : 'scaled_linear',
      linearStart: sch?.betaStart ?? SD1_SAMPLING.linearStart,
      linearEnd: sch?.betaEnd ?? SD1_SAMPLING.linearEnd,
      timesteps: sch?.trainTimesteps ?? SD1_SAMPLING.timesteps,
    },
    latentFormat: sd1LatentFormat(),
  };
  return { model, clip, vae };
}
