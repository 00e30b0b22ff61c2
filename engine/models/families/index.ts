import { FamilyRegistry } from './registry.ts';
import { SD1 } from './sd1/index.ts';
import { SD2 } from './sd2/index.ts';
import { SDXL } from './sdxl/index.ts';

/**
 * The model families Weft loads. A new family is a sibling folder of `sd1/` registered here (before
 * the SD1 fallback), with nothing to change in the model manager.
 */
export function builtinFamilies(): FamilyRegistry {
  return new FamilyRegistry(SD1).register(SDXL).register(SD2);
}

export { FamilyRegistry } from './registry.ts';
export type { AssembleContext, CheckpointParts, ModelFamily, PartsContext, TextEncoderSpec, TokenizerParams } from './family.ts';
