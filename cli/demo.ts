import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../engine/registry/context.ts';

export const DEMO_CHECKPOINT = 'weft-tiny-sd1.safetensors';

/**
 * The demo model is generated, not downloaded: a tiny SD1-architecture checkpoint with random
 * weights (deterministic from seed 0), written once into models/checkpoints/.
 */
export async function ensureDemoModel(modelsDir: string, log: Logger): Promise<string> {
  const file = path.join(modelsDir, 'checkpoints', DEMO_CHECKPOINT);
  if (fs.existsSync(file)) return file;
  const { makeTinyCheckpoint } = await import('../engine/models/make-model.ts');
  log.info(`weft: generating the demo model ${file}`);
  await makeTinyCheckpoint(file, { seed: 0 });
  return file;
}
