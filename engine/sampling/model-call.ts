import type { ModelApply, ModelCallArgs, ModelHandle, ModelWrapper } from '../models/handles.ts';
import type { ModelSamplingObject } from './model-sampling.ts';

/**
 * ComfyUI's BaseModel.apply_model: x in the sampler's space at σ → calculate_input → UNet →
 * calculate_denoised, with the model's wrappers around it, the first one outermost.
 */
export function modelCall(model: ModelHandle, ms: ModelSamplingObject): ModelApply {
  const apply: ModelApply = async ({ input, sigma, c, signal }: ModelCallArgs) => {
    const scaled = ms.calculateInput(sigma, input.data);
    const timesteps = new Float32Array(input.shape[0]).fill(ms.timestep(sigma));
    const eps = await model.unet.run({
      x: { shape: input.shape, data: scaled },
      timesteps,
      context: c.context,
      control: c.control,
      extra: c.extra,
      signal,
    });
    return { shape: input.shape, data: ms.calculateDenoised(sigma, eps.data, input.data) };
  };
  const wrapped = wrapModelCall(apply, model.wrappers ?? []);
  const options = model.wrapperOptions;
  return options ? (args) => wrapped({ ...args, options }) : wrapped;
}

/** `apply` inside `wrappers`, the first one outermost (it is called first and sees the others as its inner call). */
export function wrapModelCall(apply: ModelApply, wrappers: readonly ModelWrapper[]): ModelApply {
  let inner = apply;
  for (let i = wrappers.length - 1; i >= 0; i--) {
    const wrapper = wrappers[i];
    const next = inner;
    inner = (args) => wrapper(next, args);
  }
  return inner;
}
