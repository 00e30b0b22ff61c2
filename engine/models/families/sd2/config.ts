import type { OpenClipConfig } from '../openclip/config.ts';
import type { UNetConfig, VaeConfig } from '../sd1/config.ts';

/** Where an SD2 single-file checkpoint keeps each part (ComfyUI's supported_models.SD20). */
export const SD2_PREFIX = {
  unet: 'model.diffusion_model.',
  vae: 'first_stage_model.',
  /** OpenCLIP ViT-H/14 under open_clip names (the original LDM layout). */
  clip: 'cond_stage_model.model.',
  /** The same in Stability's sgm layout (ComfyUI renames it to `cond_stage_model.model.`). */
  clipSgm: 'conditioner.embedders.0.model.',
} as const;

/** SD2's attention heads are 64 wide at every level (ComfyUI's num_head_channels); shapes cannot tell it. */
export const SD2_HEAD_WIDTH = 64;

export interface Sd2Config {
  family: 'sd2';
  unet: UNetConfig;
  clip: OpenClipConfig;
  /** Key prefix of the text encoder's weights (SD2_PREFIX.clip or .clipSgm). */
  clipPrefix: string;
  vae: VaeConfig;
  /** 512-base and inpainting: ε; 768-v: v, told apart as ComfyUI's SD20.model_type does. */
  prediction: 'eps' | 'v_prediction';
}
