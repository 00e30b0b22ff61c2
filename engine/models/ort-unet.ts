import * as ort from 'onnxruntime-node';
import { InterruptedError } from '../core/errors.ts';
import type { Tensor } from '../core/tensor.ts';
import { controlAfterInputName, controlInputName, UNET_IO } from './families/sd1/graphs/unet-graph.ts';
import type { UNetRunArgs, UNetRunner } from './handles.ts';
import type { RunSession } from './runtime/part.ts';

/**
 * MODEL's UNet over the UNet graph; control residuals go to the control inputs, and a family's extra
 * inputs (`args.extra`) by name to the graph's inputs of that name.
 */
export class OrtUnet implements UNetRunner {
  /** Fed for every residual a run does not have: broadcasting makes one zero stand for any skip. */
  private static readonly ZERO = new ort.Tensor('float32', new Float32Array(1), [1, 1, 1, 1]);

  constructor(
    readonly inChannels: number,
    readonly contextDim: number,
    readonly skipCount: number,
    private readonly runSession: RunSession,
    /** How many `control_after_input_<i>` inputs (T2I-Adapter residuals) the graph has: the model's UNet part has one per input block. */
    readonly adapterBlocks = 0,
  ) {}

  async run(args: UNetRunArgs): Promise<Tensor> {
    if (args.signal?.aborted) throw new InterruptedError();
    const { timesteps, context } = args;
    const { c_concat: concat, ...extra } = args.extra ?? {};
    const x = concat ? concatChannels(args.x, concat) : args.x;
    if (x.shape.length !== 4 || x.shape[1] !== this.inChannels) {
      const hint =
        x.shape[1] < this.inChannels && !concat
          ? ` (an inpainting UNet: its other ${this.inChannels - x.shape[1]} channels come from InpaintModelConditioning's c_concat)`
          : '';
      throw new Error(`UNet input must be [B, ${this.inChannels}, H, W], got [${x.shape.join(', ')}]${hint}`);
    }
    const B = x.shape[0];
    if (timesteps.length !== B) throw new Error(`UNet got ${timesteps.length} timesteps for a batch of ${B}`);
    if (context.shape.length !== 3 || context.shape[0] !== B || context.shape[2] !== this.contextDim) {
      throw new Error(`UNet context must be [${B}, tokens, ${this.contextDim}], got [${context.shape.join(', ')}]`);
    }
    const feeds: Record<string, ort.Tensor> = {
      [UNET_IO.x]: new ort.Tensor('float32', x.data, [...x.shape]),
      [UNET_IO.timesteps]: new ort.Tensor('float32', timesteps, [B]),
      [UNET_IO.context]: new ort.Tensor('float32', context.data, [...context.shape]),
    };
    const control = args.control;
    if (control && control.input.length > this.skipCount) throw new Error(`control has ${control.input.length} input residuals; this UNet has ${this.skipCount} skip connections`);
    for (let i = 0; i < this.skipCount; i++) {
      const t = control?.input[i];
      feeds[controlInputName(i)] = t ? new ort.Tensor('float32', t.data, [...t.shape]) : OrtUnet.ZERO;
    }
    const after = control?.afterInput;
    if (after && after.length > this.adapterBlocks && after.slice(this.adapterBlocks).some(Boolean)) {
      throw new Error(
        this.adapterBlocks
          ? `control has ${after.length} input-block residuals; this UNet has ${this.adapterBlocks} input blocks`
          : 'this UNet graph has no T2I-Adapter inputs (control_after_input_<i>)',
      );
    }
    for (let i = 0; i < this.adapterBlocks; i++) {
      const t = control?.afterInput?.[i];
      feeds[controlAfterInputName(i)] = t ? new ort.Tensor('float32', t.data, [...t.shape]) : OrtUnet.ZERO;
    }
    const mid = control?.middle;
    feeds[UNET_IO.controlMid] = mid ? new ort.Tensor('float32', mid.data, [...mid.shape]) : OrtUnet.ZERO;
    for (const [name, t] of Object.entries(extra)) {
      // The session refuses names its graph lacks; names it has but this class feeds itself are refused here.
      if (name in feeds) throw new Error(`UNet extra input '${name}' would replace one the UNet handle feeds itself`);
      if (t.shape[0] !== B) throw new Error(`UNet extra input '${name}' has batch ${t.shape[0]}, expected ${B}`);
      feeds[name] = new ort.Tensor('float32', t.data, [...t.shape]);
    }
    const out = (await this.runSession(feeds))[UNET_IO.out];
    if (!out || !(out.data instanceof Float32Array)) throw new Error('UNet session returned no float32 output');
    return { shape: [...out.dims], data: out.data };
  }
}

/** ComfyUI's apply_model: torch.cat([x, c_concat], dim=1), the model input followed by the concat channels (unscaled). */
function concatChannels(x: Tensor, c: Tensor): Tensor {
  const [B, C, H, W] = x.shape;
  if (x.shape.length !== 4 || c.shape.length !== 4 || c.shape[0] !== B || c.shape[2] !== H || c.shape[3] !== W) {
    throw new Error(`UNet c_concat must be [${B}, C, ${H}, ${W}] to follow an input of [${x.shape.join(', ')}], got [${c.shape.join(', ')}]`);
  }
  const K = c.shape[1];
  const S = H * W;
  const out = new Float32Array(B * (C + K) * S);
  for (let b = 0; b < B; b++) {
    out.set(x.data.subarray(b * C * S, (b + 1) * C * S), b * (C + K) * S);
    out.set(c.data.subarray(b * K * S, (b + 1) * K * S), (b * (C + K) + C) * S);
  }
  return { shape: [B, C + K, H, W], data: out };
}
